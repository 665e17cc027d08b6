"""The project's dependencies, read from pyproject.toml, for the images' dependency layers.

    python docker/requirements.py engine service          # print them, one a line (base + those extras)
    python docker/requirements.py --check engine service  # exit 1 naming each one the environment lacks

The images install the dependencies in a layer of their own, before (and without) the project's code, so that a
code change rebuilds only the thin layer on top. ``--check`` runs where that code is installed with ``--no-deps``:
a base image older than pyproject.toml fails the build with what is missing instead of failing a job at run time.
Standard library only (plus ``packaging`` for ``--check``, which pip's environments have).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

DEFAULT_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The base dependencies and those of ``extras``, in order, without repeats or the project itself."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        names = ", ".join(unknown)
        raise SystemExit(f"requirements.py: unknown extra(s) {names}; pyproject.toml has {sorted(optional)}")
    own = _canonical(project["name"])
    result: list[str] = []
    for requirement in [*project.get("dependencies", []), *(r for e in extras for r in optional[e])]:
        match = _NAME.match(requirement)
        if match and _canonical(match.group(1)) == own:
            continue  # a self-reference (an extra that includes another): its dependencies are listed already
        if requirement not in result:
            result.append(requirement)
    return result


def missing(required: list[str]) -> list[str]:
    """Each requirement that no installed distribution satisfies, with what is installed instead."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    problems = []
    for line in required:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            problems.append(f"{line} (not installed)")
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{line} (installed: {installed})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("extras", nargs="*", help="optional-dependency groups to add to the base dependencies")
    parser.add_argument("--pyproject", type=Path, default=DEFAULT_PYPROJECT)
    parser.add_argument("--check", action="store_true", help="check the environment instead of printing")
    args = parser.parse_args(argv)
    required = requirements(args.pyproject, args.extras)
    if not args.check:
        sys.stdout.write("".join(f"{r}\n" for r in required))
        return 0
    problems = missing(required)
    for problem in problems:
        sys.stderr.write(f"missing dependency: {problem}\n")
    if problems:
        sys.stderr.write("the base image is older than pyproject.toml: rebuild it (docker/build-and-push.sh)\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
