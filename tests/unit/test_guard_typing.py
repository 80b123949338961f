"""``guard.llm``/``guard.retriever``/``guard.tool`` are typed per framework object.

``mypy --strict`` checks tests/typing/guard_types.py (``assert_type`` for
each overload) and a file that must fail, so the check itself is seen to
bite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import aiinvariants

TYPING = Path(__file__).resolve().parents[1] / "typing"
SRC = Path(aiinvariants.__file__).resolve().parents[1]

pytest.importorskip("mypy")

WRONG = """
from __future__ import annotations

import openai
from typing_extensions import assert_type

from aiinvariants import Guard

guard = Guard()
assert_type(guard.llm(openai.OpenAI(api_key="k")), openai.AsyncOpenAI)
guard.llm(42)
guard.retriever("not a retriever")
"""


def _mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(SRC), "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=SRC.parent,
        check=False,
    )


def test_each_guard_method_is_typed_for_each_framework_object(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_types.py"
    wrong.write_text(WRONG)
    good = _mypy(TYPING / "guard_types.py")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = _mypy(wrong).stdout
    assert 'Expression is of type "GuardedOpenAIClient"' in bad
    assert 'No overload variant of "llm"' in bad
    assert 'No overload variant of "retriever"' in bad
