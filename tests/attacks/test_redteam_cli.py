"""Red team of the command line: inputs that gave a traceback, a hang or the
wrong exit code (0 ok, 1 a check failed, 2 bad input)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiinvariants import _cli as cli
from audit_lines import segment_bytes

SRC = str(Path(cli.__file__).resolve().parents[1])


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-m", "aiinvariants._cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def good_log(path: Path) -> Path:
    event = {"invariant": "I1", "decision": "deny", "reason": "r", "subject": "s"}
    path.write_bytes(segment_bytes([event]))
    return path


def assert_bad_input(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("aiinvariants: error: ")


@pytest.mark.parametrize("command", ["report", "audit verify"])
def test_a_public_key_that_never_ends_is_refused_not_read(
    tmp_path: Path, command: str
) -> None:
    # Before: read_bytes() on /dev/zero until memory ran out (killed).
    log = good_log(tmp_path / "audit.jsonl")
    args = [*command.split(), str(log), "--public-key", "/dev/zero"]
    if command == "report":
        args += ["-o", str(tmp_path / "r.html")]
    assert_bad_input(run(*args, cwd=tmp_path))


def test_audit_verify_of_a_missing_log_is_bad_input(tmp_path: Path) -> None:
    # Before: "BROKEN ... unreadable" and exit 1, as if a chain had been
    # tampered with; report said 2 for the same file.
    assert_bad_input(run("audit", "verify", "nowhere.jsonl", cwd=tmp_path))


def test_report_with_results_holding_a_huge_number_is_bad_input(
    tmp_path: Path,
) -> None:
    log = good_log(tmp_path / "audit.jsonl")
    stats = tmp_path / "stats.jsonl"
    stats.write_text('{"trials": ' + "9" * 5000 + "}\n", encoding="utf-8")
    result = run(
        "report", str(log), "--stats", str(stats), "-o", "r.html", cwd=tmp_path
    )
    assert_bad_input(result)


def test_report_to_an_empty_output_name_is_bad_input(tmp_path: Path) -> None:
    log = good_log(tmp_path / "audit.jsonl")
    assert_bad_input(run("report", str(log), "-o", "", cwd=tmp_path))


def test_report_of_a_log_whose_name_is_not_utf8_works(tmp_path: Path) -> None:
    name = os.fsdecode(b"audit-\xff.jsonl")
    good_log(tmp_path / name)
    result = run("report", name, "-o", "r.html", cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0


def test_ctrl_c_is_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_scan", interrupted)
    assert cli.main(["scan", "-"]) == 130
    assert capsys.readouterr().err == "aiinvariants: interrupted\n"


def _cut_log(folder: Path) -> tuple[Path, Path, str]:
    """A signed log whose last line (a denial) was cut off; the PEM; the anchor."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from aiinvariants.audit import AuditEvent, JSONLSink

    key = Ed25519PrivateKey.generate()
    pem = folder / "key.pem"
    pem.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    log = folder / "audit.jsonl"
    with JSONLSink(log, signing_key=key) as sink:
        for decision in ("allow", "allow", "deny"):
            sink.write(
                AuditEvent(
                    invariant="I1", decision=decision, reason="r", subject="mallory"
                )
            )
        seq, digest = sink.head
    lines = log.read_bytes().splitlines(keepends=True)
    # mallory deletes the denial, and the final checkpoint written after it
    log.write_bytes(b"".join(lines[:-2]))
    return log, pem, f"{seq}:{digest}"


def test_a_log_cut_short_is_caught_with_an_anchor(tmp_path: Path) -> None:
    # Before: no way to pass the anchor from the command line; the cut log
    # verified and the report showed a green "every signature verified".
    log, pem, anchor = _cut_log(tmp_path)
    verified = run(
        "audit", "verify", str(log), "--public-key", str(pem), "--anchor", anchor,
        cwd=tmp_path,
    )  # fmt: skip
    assert verified.returncode == 1, verified.stderr
    assert "truncated" in verified.stdout
    reported = run(
        "report", str(log), "--public-key", str(pem), "--anchor", anchor,
        "-o", "r.html", cwd=tmp_path,
    )  # fmt: skip
    assert reported.returncode == 1, reported.stderr
    assert "truncated" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_without_an_anchor_the_page_says_a_cut_goes_unnoticed(tmp_path: Path) -> None:
    log, pem, _ = _cut_log(tmp_path)
    reported = run(
        "report", str(log), "--public-key", str(pem), "-o", "r.html", cwd=tmp_path
    )
    assert reported.returncode == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "lines cut off the end would go unnoticed" in html


@pytest.mark.parametrize("anchor", ["x:y", "0:" + "a" * 64, "3:" + "A" * 64, "3"])
def test_a_malformed_anchor_is_bad_input(tmp_path: Path, anchor: str) -> None:
    log = good_log(tmp_path / "audit.jsonl")
    assert_bad_input(run("audit", "verify", str(log), "--anchor", anchor, cwd=tmp_path))
