"""The demo cleans up after itself, also when a step fails."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest

from aiinvariants import _demo
from aiinvariants._demo import _steps


def test_a_failing_step_still_removes_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    threads = set(threading.enumerate())

    def broken(ctx: _steps.Context) -> _steps.Verdict:
        raise RuntimeError("a step broke")

    monkeypatch.setattr(_demo, "STEPS", [_steps.step_i1, broken])
    with pytest.raises(RuntimeError, match="a step broke"):
        _demo.run_demo()
    assert list(tmp_path.iterdir()) == []
    # The loopback servers were shut down too.
    assert {t for t in threading.enumerate() if t.is_alive()} <= threads


def test_a_step_that_does_not_hold_fails_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def weak(ctx: _steps.Context) -> _steps.Verdict:
        return _steps.Verdict("I3", "forbidden capabilities", False, "reachable")

    monkeypatch.setattr(_demo, "STEPS", [_steps.step_i1, weak])
    assert _demo.run_demo() == 1
    out = capsys.readouterr().out
    assert "I3  FAIL forbidden capabilities: reachable" in out
    assert "1 of 2 invariants held; FAILED: I3" in out
    assert list(tmp_path.iterdir()) == []


def test_servers_listen_on_loopback_only() -> None:
    from aiinvariants._demo._servers import DemoServers

    with DemoServers(jwks={"keys": []}) as servers:
        assert servers.url.startswith("http://127.0.0.1:")
