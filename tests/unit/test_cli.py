from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiinvariants._cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "examples" / "policies" / "support-assistant.yaml"
BAD = ROOT / "examples" / "policies" / "careless.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiinvariants._cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


INVARIANTS = [f"I{n}" for n in range(1, 15)]


def test_demo_walks_every_invariant_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.run(
        [sys.executable, "-m", "aiinvariants._cli", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdicts = [
        line for line in proc.stdout.splitlines() if line[:1] == "I" and " " in line
    ]
    # One verdict line per invariant, in order, each one held.
    assert [line.split()[0] for line in verdicts] == INVARIANTS
    assert all(line.split()[1] == "ok" for line in verdicts), verdicts
    assert "14 of 14 invariants held" in proc.stdout
    # The "any of" denial names every alternative.
    assert "scope_missing: finance:admin or orders:refund" in proc.stdout
    assert "bad_signature" in proc.stdout
    assert "caught at line" in proc.stdout
    # It tells the user how to run the CLI and keeps nothing it was not asked to.
    assert "demo --out demo-out" in proc.stdout
    assert "audit verify demo-out/audit.jsonl" in proc.stdout
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


def test_demo_keeps_its_evidence_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "kept"
    proc = run("demo", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    log = out / "audit.jsonl"
    key = out / "audit-public-key.pem"
    assert f"audit verify {log} --public-key {key}" in proc.stdout
    assert main(["audit", "verify", str(log), "--public-key", str(key)]) == 0
    tampered = out / "audit-tampered.jsonl"
    assert main(["audit", "verify", str(tampered), "--public-key", str(key)]) == 1
    stats = [
        json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()
    ]
    assert stats[0]["trials"] == 299
    assert stats[0]["passed"] is True


def test_demo_on_an_unwritable_folder_is_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run("demo", "--out", str(blocker / "sub"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(blocker / "sub") in proc.stderr


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
        [sys.executable, "-m", "aiinvariants._cli", "scan", "-", "--redacted"],
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


def test_scan_says_why_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nofile.txt"
    assert main(["scan", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing} does not exist" in err
    assert "UTF-8" not in err
    assert main(["scan", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    assert main(["scan", str(latin)]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_scan_of_undecodable_stdin_is_bad_input() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aiinvariants._cli", "scan", "-"],
        input=b"\xff\xfe key",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert b"standard input is not UTF-8" in proc.stderr


def test_scan_redacted_on_blocked_text_explains_and_never_shows_it(
    tmp_path: Path,
) -> None:
    key = "ghp_Ab3dE6gH9jK2mN5pQ8rS1tU4vW7xY0zA1bC2"
    answer = tmp_path / "answer.txt"
    answer.write_text(f"the token is {key}")
    proc = run("scan", str(answer), "--redacted")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "BLOCKED: nothing printed" in proc.stderr
    assert "github-pat at 13-53" in proc.stderr
    assert "run without --redacted" in proc.stderr
    assert key not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["policy", "check", "{missing}"], 2),
        (["verify", "{missing}"], 2),
        (["verify", "{good}", "--output", "{tmp}/no/such/dir/r.txt"], 2),
        (["export", "aws-scp", "{missing}"], 2),
        (["export", "aws-scp"], 2),
        (["scan", "{missing}"], 2),
        (["scan", "{good}", "--policy", "{missing}"], 2),
        (["report", "{missing}", "-o", "{tmp}/r.html"], 2),
        (["verify", "{good}"], 0),
        (["verify", "{bad}"], 1),
        (["policy", "check", "{good}"], 0),
    ],
)
def test_exit_codes_as_documented(tmp_path: Path, argv: list[str], code: int) -> None:
    """0 ok, 1 a check found a violation, 2 bad input; never a traceback."""
    values = {
        "missing": str(tmp_path / "nothere.yaml"),
        "good": str(GOOD),
        "bad": str(BAD),
        "tmp": str(tmp_path),
    }
    proc = run(*(arg.format(**values) for arg in argv))
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    if code == 2:
        assert proc.stderr.startswith("aiinvariants: error: ")


def test_usage_errors_exit_2() -> None:
    for argv in (["bogus"], ["scan"], ["verify", "x", "--format", "pdf"], []):
        proc = run(*argv)
        assert proc.returncode == 2
        assert "usage:" in proc.stderr


def test_endless_inputs_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "/dev/zero"]) == 2
    assert "not a regular file" in capsys.readouterr().err
