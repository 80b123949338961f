"""Red team of ``aiinvariants demo``: what it writes, leaves and prints."""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

import pytest

import aiinvariants._demo as demo
from aiinvariants import PolicyError
from aiinvariants._demo import _steps, run_demo


@pytest.fixture
def one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "STEPS", [_steps.step_i1])


@pytest.mark.usefixtures("one_step")
def test_out_never_overwrites_a_folder_of_real_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "demo --out /var/log/app" deleted the real audit.jsonl and put
    # the demo's public key in place of the real one.
    evidence = tmp_path / "logs"
    evidence.mkdir()
    (evidence / "audit.jsonl").write_text("the real trail\n", encoding="utf-8")
    (evidence / "audit-public-key.pem").write_text("the real key\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not empty"):
        run_demo(out=evidence)
    assert (evidence / "audit.jsonl").read_text(encoding="utf-8") == "the real trail\n"
    assert (evidence / "audit-public-key.pem").read_text(
        encoding="utf-8"
    ) == "the real key\n"
    assert sorted(p.name for p in evidence.iterdir()) == [
        "audit-public-key.pem",
        "audit.jsonl",
    ]


@pytest.mark.usefixtures("one_step")
def test_out_may_be_reused_by_the_demo_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo-out"
    assert run_demo(out=folder) == 0
    assert run_demo(out=folder) == 0  # the hint it prints works twice
    assert (folder / "audit.jsonl").is_file()


def test_ctrl_c_in_a_step_leaves_no_folder_server_or_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    threads = set(threading.enumerate())

    def interrupted(ctx: _steps.Context) -> _steps.Verdict:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "STEPS", [_steps.step_i1, interrupted])
    with pytest.raises(KeyboardInterrupt):
        run_demo()
    assert list(tmp_path.iterdir()) == []
    assert {t for t in threading.enumerate() if t.is_alive()} <= threads
    out = capsys.readouterr().out
    assert not re.search(r"eyJ[\w-]{8,}", out)  # no token
    assert "PRIVATE KEY" not in out
