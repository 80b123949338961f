from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiinvariants.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "examples" / "policies" / "support-assistant.yaml"
BAD = ROOT / "examples" / "policies" / "careless.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiinvariants.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_runs_and_verifies_its_audit_chain(tmp_path: Path) -> None:
    proc = run("demo", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "verify_chain: ok" in proc.stdout
    assert "BROKEN - first bad line" in proc.stdout
    assert "DENY scope_missing: crm:read" in proc.stdout
    assert "DENY authentication_required" in proc.stdout
    # The log it leaves behind verifies with the CLI and the public key.
    log = tmp_path / "audit.jsonl"
    key = tmp_path / "audit-public-key.pem"
    assert main(["audit", "verify", str(log), "--public-key", str(key)]) == 0
    tampered = tmp_path / "audit-tampered.jsonl"
    assert main(["audit", "verify", str(tampered), "--public-key", str(key)]) == 1


def test_verify_exit_codes_and_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(GOOD)]) == 0
    assert "ok, no findings" in capsys.readouterr().out
    assert main(["verify", str(BAD)]) == 1
    assert "AIV001" in capsys.readouterr().out
    out = tmp_path / "report.sarif"
    assert main(["verify", str(BAD), "--format", "sarif", "--output", str(out)]) == 1
    assert json.loads(out.read_text())["version"] == "2.1.0"
    assert main(["verify", str(BAD), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["findings"]


def test_strict_fails_on_warnings(tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"tools": {"t": {"scopes": ["a:b"]}}}))
    assert main(["verify", str(policy)]) == 0  # AIV004 is a warning
    assert main(["verify", "--strict", str(policy)]) == 1


def test_policy_check_and_errors_without_traceback(tmp_path: Path) -> None:
    proc = run("policy", "check", str(GOOD))
    assert proc.returncode == 0
    assert "sha256:" in proc.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nexposre: public\n")
    proc = run("policy", "check", str(bad))
    assert proc.returncode == 2
    assert "exposre" in proc.stderr
    assert str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_export_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "aws-scp", str(GOOD)]) == 0
    scp = json.loads(capsys.readouterr().out)
    assert scp["Statement"][0]["Effect"] == "Deny"
    assert main(["export", "aws-ai-optout"]) == 0
    assert "optOut" in capsys.readouterr().out
    assert main(["export", "aws-scp"]) == 2


def test_audit_verify_on_a_missing_file_is_a_clear_failure(tmp_path: Path) -> None:
    proc = run("audit", "verify", str(tmp_path / "missing.jsonl"))
    assert proc.returncode in {1, 2}
    assert "Traceback" not in proc.stderr


def test_scan_blocks_and_redacts_without_printing_secrets(tmp_path: Path) -> None:
    key = "ghp_Ab3dE6gH9jK2mN5pQ8rS1tU4vW7xY0zA1bC2"
    answer = tmp_path / "answer.txt"
    answer.write_text(f"Mail ann@example.com; the token is {key}\n")
    proc = run("scan", str(answer))
    assert proc.returncode == 1
    assert "github-pat" in proc.stdout
    assert "pii-email" in proc.stdout
    assert "BLOCKED" in proc.stdout
    assert key not in proc.stdout + proc.stderr
    assert "ann@example.com" not in proc.stdout

    clean = subprocess.run(
        [sys.executable, "-m", "aiinvariants.cli", "scan", "-", "--redacted"],
        input="Mail ann@example.com about order 7.",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert clean.returncode == 0
    assert clean.stdout == "Mail [REDACTED] about order 7."


def test_scan_uses_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"outputs": {"pii": {"action": "block"}}}))
    answer = tmp_path / "a.txt"
    answer.write_text("Mail ann@example.com")
    assert main(["scan", str(answer)]) == 0
    assert main(["scan", str(answer), "--policy", str(policy)]) == 1
    assert main(["scan", str(tmp_path / "missing.txt")]) == 2
