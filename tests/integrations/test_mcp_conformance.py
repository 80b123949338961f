"""The MCP conformance suite: the guard is transparent for an authorised caller.

``tools/conformance.py`` runs the server scenarios of
``@modelcontextprotocol/conformance`` against ``tests/conformance_server.py``
unguarded and guarded; no scenario may fail guarded that passes unguarded.
It runs as ``make conformance`` (which ``.ci/run`` calls): a whole run takes
15-20 s, but scenarios waiting on a server-to-client request sometimes sit
out the suite's 60 s timeout on a loaded machine, so it stays out of
``make test``. Here: the guarded server really guards, the result files are
read right, and (with ``AIINVARIANTS_CONFORMANCE=1``) the whole comparison.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tools" / "conformance.py"
SERVER = ROOT / "tests" / "conformance_server.py"


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_runner", RUNNER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    os.environ.get("AIINVARIANTS_CONFORMANCE") != "1",
    reason="the whole suite runs as `make conformance` (AIINVARIANTS_CONFORMANCE=1)",
)
def test_no_scenario_fails_guarded_that_passes_unguarded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if shutil.which("npm") is None and shutil.which("node") is None:
        pytest.skip("npm is not installed: the conformance suite cannot be fetched")
    status = _runner().main([])
    out = capsys.readouterr()
    if status == 2:
        pytest.skip("the conformance suite is not available: " + out.err[-300:])
    assert status == 0, out.out + out.err
    rows = [line for line in out.out.splitlines() if " unguarded=" in line]
    # Every server scenario of the active suite ran, and each passes both ways.
    assert len(rows) >= 30
    assert all("guarded=SUCCESS" in row.split("unguarded=")[1] for row in rows)
    for scenario in ("resources-read-text", "prompts-get-with-args", "tools-list"):
        assert any(row.startswith(scenario + " ") for row in rows)


def test_guarded_conformance_server_really_guards() -> None:
    # The suite speaks with a token the harness adds only when a request
    # has none: a request with another token is verified, and refused.
    runner = _runner()
    port = runner._free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src")])}
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), str(port), "--guarded"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        runner._wait_listening(port, proc, 30)
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.post(
                    url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={
                        "Authorization": "Bearer not-a-token",
                        "Accept": "application/json, text/event-stream",
                    },
                    timeout=5,
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge
        assert re.search(r'scope="[^"]*mcp:read[^"]*"', challenge)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_results_are_read_per_scenario_and_check(tmp_path: Path) -> None:
    runner = _runner()
    one = tmp_path / "server-tools-call-simple-text-2026-11-30T15-37-13-200Z"
    two = tmp_path / "server-dns-rebinding-protection-2026-11-30T15-31-15-852Z"
    one.mkdir()
    two.mkdir()
    (one / "checks.json").write_text(
        json.dumps([{"id": "tools-call-simple-text", "status": "SUCCESS"}])
    )
    (two / "checks.json").write_text(
        json.dumps(
            [
                {"id": "host-valid-accepted", "status": "SUCCESS"},
                {"id": "host-rebinding-rejected", "status": "FAILURE"},
            ]
        )
    )
    assert runner._results(tmp_path) == {
        "tools-call-simple-text": "SUCCESS",
        "dns-rebinding-protection/host-valid-accepted": "SUCCESS",
        "dns-rebinding-protection/host-rebinding-rejected": "FAILURE",
    }
    plain = {"a": "SUCCESS", "b": "FAILURE", "c": "SUCCESS"}
    assert runner._regressions(plain, {"a": "FAILURE", "b": "SUCCESS"}) == ["a", "c"]
