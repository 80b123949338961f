"""The layers of docs/architecture.md hold: imports that run never go up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "aiinvariants_import_graph", ROOT / "tools" / "import_graph.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write(src: Path, name: str, text: str = "") -> None:
    path = src / Path(*name.split("."))
    path.mkdir(parents=True, exist_ok=True)
    (path / "__init__.py").write_text(text, encoding="utf-8")


def test_the_library_keeps_its_layers(graph_tool: ModuleType) -> None:
    assert graph_tool.check_layers(graph_tool.load(ROOT / "src")) == []


def test_an_import_going_up_is_reported(graph_tool: ModuleType, tmp_path: Path) -> None:
    write(tmp_path, "aiinvariants")
    write(tmp_path, "aiinvariants.integrations")
    write(tmp_path, "aiinvariants._errors", "import aiinvariants.integrations\n")
    problems = graph_tool.check_layers(graph_tool.load(tmp_path))
    assert any("aiinvariants._errors (foundation) imports" in p for p in problems)


def test_an_allowed_upward_import_must_be_lazy(
    graph_tool: ModuleType, tmp_path: Path
) -> None:
    write(tmp_path, "aiinvariants")
    write(tmp_path, "aiinvariants._guard")
    write(tmp_path, "aiinvariants._scopes", "from aiinvariants import _guard\n")
    problems = graph_tool.check_layers(graph_tool.load(tmp_path))
    assert any("aiinvariants._scopes (decisions) imports" in p for p in problems)
    write(
        tmp_path, "aiinvariants._scopes", "def f():\n    import aiinvariants._guard\n"
    )
    problems = graph_tool.check_layers(graph_tool.load(tmp_path))
    assert not any(p.startswith("aiinvariants._scopes (") for p in problems)


def test_type_checking_imports_do_not_count(
    graph_tool: ModuleType, tmp_path: Path
) -> None:
    write(tmp_path, "aiinvariants")
    write(tmp_path, "aiinvariants._guard")
    write(
        tmp_path,
        "aiinvariants._errors",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    import aiinvariants._guard\n",
    )
    problems = graph_tool.check_layers(graph_tool.load(tmp_path))
    assert not any(p.startswith("aiinvariants._errors") for p in problems)


def test_a_module_in_no_layer_is_reported(
    graph_tool: ModuleType, tmp_path: Path
) -> None:
    write(tmp_path, "aiinvariants")
    write(tmp_path, "aiinvariants.newthing")
    problems = graph_tool.check_layers(graph_tool.load(tmp_path))
    assert "aiinvariants.newthing: in no layer" in problems[0]
