"""Red team of ``aiinvariants report``: crashes, forged verdicts, path tricks.

Each test is an attack that got through before its fix. The logs here are
*valid* hash chains (as JSONLSink writes them), so nothing but the report
stands between a hostile field and the reader.
"""

from __future__ import annotations

import builtins
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiinvariants import PolicyError
from aiinvariants._report import write_report
from aiinvariants._report._read import DECISIONS, MAX_INVARIANTS, read_log
from aiinvariants.audit import AuditEvent, JSONLSink
from audit_lines import segment_bytes

DENY = {
    "invariant": "I1",
    "decision": "deny",
    "reason": "scope_missing",
    "subject": "mallory",
    "policy_hash": "sha256:00",
    "time": "2026-11-30T12:00:00Z",
}


def chain(path: Path, events: list[Mapping[str, Any]]) -> None:
    """A valid, unsigned segment of ``events``, byte for byte as written."""
    path.write_bytes(segment_bytes(events))


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"]
)
def test_a_time_offset_past_the_calendar_does_not_crash_the_page(
    tmp_path: Path, stamp: str
) -> None:
    # Valid ISO 8601, a valid chain: the report raised ValueError ("year 0 is
    # out of range") and wrote no page at all.
    log = tmp_path / "audit.jsonl"
    chain(log, [{**DENY, "time": stamp}, DENY])
    out = tmp_path / "r.html"
    assert write_report(log, out).ok
    assert "2 decisions (2 denied)" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("field", ["subject", "reason", "invariant", "policy_hash"])
def test_a_lone_surrogate_in_a_field_does_not_crash_the_page(
    tmp_path: Path, field: str
) -> None:
    # "\ud800" is valid JSON, and a token's sub claim can carry it. The
    # writer refuses it (it has no canonical form), but a hostile log can
    # hold it: the page could not be encoded.
    log = tmp_path / "audit.jsonl"
    chain(log, [{**DENY, field: "xQQQQQQy"}])
    log.write_bytes(log.read_bytes().replace(b"xQQQQQQy", b"x\\ud800y"))
    out = tmp_path / "r.html"
    assert not write_report(log, out).ok  # not the canonical form: not verified
    assert "x?y" in out.read_text(encoding="utf-8")


def test_a_log_file_name_that_is_not_utf8_does_not_crash_the_page(
    tmp_path: Path,
) -> None:
    log = Path(os.fsdecode(bytes(tmp_path) + b"/audit-\xff.jsonl"))
    chain(log, [DENY])
    out = tmp_path / "r.html"
    assert write_report(log, out).ok
    assert "audit-?.jsonl" in out.read_text(encoding="utf-8")


def _signed_log(path: Path, key: Ed25519PrivateKey) -> None:
    with JSONLSink(path, signing_key=key) as sink:
        sink.write(
            AuditEvent(
                invariant="I1", decision="deny", reason="real_denial", subject="bob"
            )
        )


def test_a_log_swapped_between_two_reads_is_not_shown_as_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attacker cannot sign, so they race: the report summarised one read
    # of the path and verified another. The genuine signed log is in place
    # for the verification, the forged one for the summary: the page showed
    # the forgery (no denial at all) under "every line's Ed25519 signature
    # verified".
    key = Ed25519PrivateKey.generate()
    log = tmp_path / "audit.jsonl"
    genuine = tmp_path / "genuine.jsonl"
    _signed_log(genuine, key)
    chain(log, [{**DENY, "decision": "allow", "reason": "forged_allow"}])
    opened: list[str] = []
    real_open = builtins.open

    def racing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and Path(file) == log:
            opened.append(str(file))
            if len(opened) == 2:  # the attacker wins the race here
                os.replace(genuine, log)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", racing_open)
    monkeypatch.setattr(io, "open", racing_open)
    out = tmp_path / "r.html"
    chain_report = write_report(log, out, public_key=key.public_key())
    html = out.read_text(encoding="utf-8")
    if chain_report.ok:
        # What is shown is what was verified: the real denial, not the
        # forgery that hides it.
        assert "real_denial" in html, "a forged log shown as signed"
    else:
        assert "Chain BROKEN" in html


def test_a_link_planted_at_the_partial_name_is_not_followed(tmp_path: Path) -> None:
    # The page was first written to ".{name}.{pid}.partial", a name anyone
    # sharing the folder can guess: a symlink planted there made the report
    # overwrite the file it points to.
    log = tmp_path / "audit.jsonl"
    chain(log, [DENY])
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    shared = tmp_path / "shared"
    shared.mkdir()
    out = shared / "r.html"
    (shared / f".r.html.{os.getpid()}.partial").symlink_to(victim)
    write_report(log, out)
    assert victim.read_text(encoding="utf-8") == "precious"
    assert out.is_file()
    assert not out.is_symlink()


def test_an_empty_output_name_is_bad_input_not_a_crash(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    chain(log, [DENY])
    with pytest.raises(PolicyError, match="give the HTML file"):
        write_report(log, Path(""))


def test_a_results_number_of_5000_digits_is_bad_input_not_a_crash(
    tmp_path: Path,
) -> None:
    # Python refuses to parse such an int with ValueError, not JSONDecodeError.
    log = tmp_path / "audit.jsonl"
    chain(log, [DENY])
    for name, text in (
        ("lines.jsonl", '{"trials": ' + "1" * 5000 + "}\n"),
        ("array.json", '[{"trials": ' + "1" * 5000 + "}]"),
    ):
        stats = tmp_path / name
        stats.write_text(text, encoding="utf-8")
        with pytest.raises(PolicyError, match="not valid JSON"):
            write_report(log, tmp_path / "r.html", stats=stats)


def test_a_results_name_with_a_lone_surrogate_does_not_crash_the_page(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.jsonl"
    chain(log, [DENY])
    stats = tmp_path / "stats.jsonl"
    record = {
        "name": "t\ud800",
        "trials": 10,
        "violations": 0,
        "observed_rate": 0.0,
        "upper_bound": 0.26,
        "max_violation_rate": 0.3,
        "confidence": 0.95,
        "passed": True,
    }
    stats.write_text(json.dumps(record) + "\n", encoding="utf-8")
    out = tmp_path / "r.html"
    write_report(log, out, stats=stats)
    assert "t?" in out.read_text(encoding="utf-8")


def test_made_up_invariant_ids_and_decisions_stay_bounded(tmp_path: Path) -> None:
    # Each distinct invariant id was a row with its own timeline and a
    # counter per time bucket: an 81 MB hostile log of distinct ids took
    # 87 s, 566 MB of memory and wrote a 111 MB page.
    log = tmp_path / "audit.jsonl"
    with log.open("w", encoding="utf-8") as f:
        for i in range(3000):
            event = {**DENY, "invariant": f"I{i}x", "decision": f"d{i}"}
            event["time"] = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00Z"
            f.write(json.dumps({"event": event}) + "\n")
    summary = read_log(log)
    assert len(summary.by_invariant) <= MAX_INVARIANTS + 1
    assert sum(len(per) for per in summary.buckets.values()) <= 512 * (
        MAX_INVARIANTS + 1
    )
    assert all(
        set(counts) <= {*DECISIONS, "unknown"}
        for counts in summary.by_invariant.values()
    )
    out = tmp_path / "r.html"
    write_report(log, out)
    html = out.read_text(encoding="utf-8")
    assert len(html) < 200_000
    assert "3000 decisions" in html


@pytest.mark.parametrize("target", ["/dev/null", "folder"])
def test_an_output_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, target: str
) -> None:
    # "-o /dev/stdout": the page was renamed over the name, replacing the
    # device link itself (as root: /dev/stdout became an HTML file). Here a
    # link to /dev/null stands in for it.
    log = tmp_path / "audit.jsonl"
    chain(log, [DENY])
    if target == "folder":
        out = tmp_path / "folder"
        out.mkdir()
    else:
        out = tmp_path / "stdout"
        out.symlink_to(target)
    with pytest.raises(PolicyError, match="not a regular file"):
        write_report(log, out)
    assert out.is_dir() if target == "folder" else out.readlink() == Path(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.jsonl", out.name]


GENUINE = {
    "name": "no key streams out",
    "invariant": "I8",
    "trials": 45,
    "violations": 0,
    "observed_rate": 0.0,
    "upper_bound": 0.049881492681856265,  # 1 - 0.1 ** (1 / 45)
    "max_violation_rate": 0.05,
    "confidence": 0.9,
    "passed": True,
}


@pytest.mark.parametrize(
    "forged",
    [
        # 10 trials cannot bound the rate below 25.9% at 95%.
        {"trials": 10, "upper_bound": 0.001, "confidence": 0.95},
        # The bound misses the target, the record says it holds anyway.
        {"max_violation_rate": 0.01},
        # 3 violations reported as an observed rate of zero.
        {"violations": 3, "upper_bound": 0.2},
        {"confidence": 1.5},
        {"trials": 0, "violations": 0},
    ],
)
def test_a_forged_result_is_never_shown_as_holding(
    tmp_path: Path, forged: dict[str, object]
) -> None:
    # Before: the page printed "holds" whenever the record said passed: true.
    log = tmp_path / "audit.jsonl"
    chain(log, [DENY])
    stats = tmp_path / "stats.jsonl"
    stats.write_text(
        json.dumps(GENUINE) + "\n" + json.dumps({**GENUINE, **forged}) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="line 2"):
        write_report(log, tmp_path / "r.html", stats=stats)


def test_a_genuine_result_still_holds(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    chain(log, [DENY])
    stats = tmp_path / "stats.jsonl"
    stats.write_text(json.dumps(GENUINE) + "\n", encoding="utf-8")
    out = tmp_path / "r.html"
    write_report(log, out, stats=stats)
    assert '<span class="pass">holds</span>' in out.read_text(encoding="utf-8")
