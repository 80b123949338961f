"""The docs' Python snippets parse, and what they import from aiinvariants exists."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SNIPPET = re.compile(r"```python\n(.*?)```", re.S)


def snippets(page: Path) -> list[str]:
    return SNIPPET.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_snippets_parse_and_import_real_names(page: Path) -> None:
    for number, code in enumerate(snippets(page), start=1):
        where = f"{page.name} snippet {number}"
        try:
            tree = ast.parse(code, filename=where)
        except SyntaxError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{where}: {exc}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "aiinvariants"
            ):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    found = hasattr(module, alias.name) or _is_module(
                        f"{node.module}.{alias.name}"
                    )
                    assert found, f"{where}: {node.module} has no {alias.name}"


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
