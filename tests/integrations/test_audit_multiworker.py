"""A real multi-process deployment: uvicorn workers writing one audit trail.

uvicorn serves tests/integrations/multiworker_app.py with two workers on
loopback; a few hundred concurrent requests go through; one worker is killed
(SIGKILL) and uvicorn restarts it; then the server stops gracefully, and the
CLI verifies the whole trail from the policy's configured path. Every
request's decision must be present exactly once, and a torn last line (a
crash mid-write) must be reported as a torn line, not as tampering.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from tests.audit_spec_verifier import spec_verify

ROOT = Path(__file__).resolve().parents[2]
PER_BATCH = 150
DEADLINE = 40.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids(base: str, want: int, exclude: set[int], until: float) -> set[int]:
    seen: set[int] = set()
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < until:
            try:
                reply = client.get(f"{base}/health", headers={"Connection": "close"})
                seen.add(reply.json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.1)
            if len(seen - exclude) >= want:
                return seen - exclude
    raise AssertionError(f"workers not serving in time (saw {seen})")


async def _batch(base: str, numbers: range) -> list[dict[str, object]]:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.get(f"{base}/decide/{n}") for n in numbers)
        )
    assert all(r.status_code in (200, 403) for r in responses)
    return [r.json() for r in responses]


def test_two_workers_one_killed_the_whole_trail_verifies(tmp_path: Path) -> None:
    until = time.monotonic() + DEADLINE
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public = tmp_path / "audit-public.pem"
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    trail = tmp_path / "trail"
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "audit": {
                    "sinks": [
                        {
                            "kind": "jsonl",
                            "path": str(trail / "{host}-{pid}.jsonl"),
                            "sign_key_env": "AUDIT_SIGNING_KEY",
                            "checkpoint_every": 25,
                        }
                    ]
                }
            }
        )
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "AIINVARIANTS_TEST_POLICY": str(policy),
        "AUDIT_SIGNING_KEY": seed.decode(),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "multiworker_app:app",
            "--app-dir",
            str(ROOT / "tests" / "integrations"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        workers = _pids(base, 2, set(), until)
        first = asyncio.run(_batch(base, range(PER_BATCH)))
        # Kill a worker that has recorded decisions.
        victim = Counter(r["pid"] for r in first).most_common(1)[0][0]
        assert victim in workers
        os.kill(victim, signal.SIGKILL)
        # uvicorn notices the dead worker and starts a new one
        _pids(base, 2, {victim}, until)
        second = asyncio.run(_batch(base, range(PER_BATCH, 2 * PER_BATCH)))
        assert len(first) + len(second) == 2 * PER_BATCH
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, err = server.communicate(timeout=max(5.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    assert b"another process writes" not in err, err.decode(errors="replace")[-2000:]

    segments = sorted(trail.glob("*.jsonl"))
    assert len(segments) == 3  # two workers and the restarted one
    # The killed worker's file, as a crash mid-write would leave it:
    killed = next(p for p in segments if p.name.endswith(f"-{victim}.jsonl"))
    with killed.open("ab") as stream:
        stream.write(b'{"chain":"0123')

    cli = [sys.executable, "-m", "aiinvariants._cli", "audit", "verify"]
    result = subprocess.run(
        [
            *cli,
            "--policy",
            str(policy),
            "--public-key",
            str(public),
            "--require-closed",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "torn line" in result.stdout
    assert "VIOLATION" not in result.stdout
    assert f"{2 * PER_BATCH} events" in result.stdout

    # Every request's decision is there exactly once (the independent reader).
    spec = spec_verify(segments, [key.public_key()])
    assert spec.problems == []
    assert len(spec.torn) == 1
    decided = Counter(e["resource"] for e in spec.events)
    assert decided == Counter(f"req-{n}" for n in range(2 * PER_BATCH))
    denied = {e["resource"] for e in spec.events if e["decision"] == "deny"}
    assert denied == {f"req-{n}" for n in range(0, 2 * PER_BATCH, 3)}

    # Tampering with the same trail is still caught.
    raw = killed.read_bytes().splitlines(keepends=True)
    assert len(raw) > 3  # start, events (and the torn line)
    del raw[2]
    killed.write_bytes(b"".join(raw))
    broken = subprocess.run(
        [*cli, "--policy", str(policy), "--public-key", str(public)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert broken.returncode == 1, broken.stdout
    assert "VIOLATION" in broken.stdout
