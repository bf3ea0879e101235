"""The import direction of DESIGN.md §1, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
OURS = {"tenants", "gateway", "billing", "admin_ui", "bitbot"}
ALLOWED = {
    "tenants": set(),
    "billing": {"tenants"},
    "gateway": {"tenants", "billing"},
    "admin_ui": {"tenants", "billing"},
    "bitbot": {"tenants", "billing", "gateway", "admin_ui"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in OURS and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    forbidden = {
        name: files
        for name, files in imported_packages(package).items()
        if name not in ALLOWED[package]
    }
    assert forbidden == {}
