"""The layers import downward only: the engine knows nothing of the service, the shared job core nothing of the API
or the workers, the workers nothing of the API, and the API of the workers only the call that enqueues a job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("finetuning", "jobcore", "api", "worker", "ftjob", "migrations")
# package -> what it must not import; an entry "pkg.module" is allowed by name
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "finetuning": ("jobcore", "api", "worker", "ftjob"),
    "jobcore": ("api", "worker", "ftjob"),
    "worker": ("api", "ftjob"),
    "api": ("worker", "ftjob"),
    "migrations": ("api", "worker", "ftjob"),
    "ftjob": ("finetuning", "jobcore", "api", "worker"),
}
ALLOWED = {("api", "worker.dispatch")}  # submitting a job sends its message


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def upward_imports(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imports(path)):
            top = name.split(".")[0]
            if top in FORBIDDEN[package] and (package, name) not in ALLOWED:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_layer_imports_upward(package: str) -> None:
    assert upward_imports(package) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from api.services import submit_job\nimport worker.runner\nfrom . import sibling\n")
    assert imports(module) == {"api.services", "worker.runner"}
