"""aiinvariants report: the summary, the page, the CLI, the results option."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from datetime import UTC
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import (
    ANONYMOUS,
    Guard,
    InvariantViolation,
    Principal,
    acting_as,
)
from aiinvariants._cli import main
from aiinvariants._report._read import MAX_BUCKETS, LogSummary, _timestamp, read_log
from aiinvariants.audit import JSONLSink
from aiinvariants.testing import assert_holds_with_probability

ALICE = Principal(subject="alice", authenticated=True, scopes="crm:read")
BOB = Principal(subject="bob", authenticated=True, scopes="tickets:read")


def write_log(folder: Path) -> tuple[Path, Path]:
    """A signed log of real decisions: 2 allowed, 3 denied (2 bob, 1 anonymous)."""
    key = Ed25519PrivateKey.generate()
    pem = folder / "key.pem"
    pem.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    log = folder / "audit.jsonl"
    with Guard(sinks=[JSONLSink(log, signing_key=key)]) as guard:

        @guard.enforce_user_scope("crm:read", resource="crm.read")
        def read() -> None: ...

        for who in (ALICE, ALICE, BOB, BOB, ANONYMOUS):
            with acting_as(who), contextlib.suppress(InvariantViolation):
                read()
    return log, pem


def page(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_report_of_a_signed_log(tmp_path: Path) -> None:
    log, pem = write_log(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(log), "--public-key", str(pem), "-o", str(out)]) == 0
    html = page(out)
    # 5 decisions, the segment's start record and its final checkpoint.
    assert "Chain intact: 7 line(s)" in html
    assert "checkpoints verified with the given public key" in html
    assert "5 decisions (3 denied)" in html
    # The per-invariant table: I1 allowed twice, denied three times.
    row = re.search(r"<b>I1</b>.*?</tr>", html)
    assert row is not None
    assert re.findall(r'<td class="n">(\d+)</td>', row.group(0)) == ["2", "3", "0"]
    # Every invariant has a row, also those with no decisions.
    for n in range(1, 15):
        assert f"<b>I{n}</b>" in html
    assert "I1 scope_missing" in html
    assert "I1 authentication_required" in html
    assert ">bob</td>" in html
    assert ">anonymous</td>" in html
    assert "<script" not in html
    assert "http://" not in html
    assert "https://" not in html


def test_without_key_the_banner_says_signatures_were_not_checked(
    tmp_path: Path,
) -> None:
    log, _ = write_log(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", str(log), "-o", str(out)]) == 0
    assert "no --public-key was given to check them" in page(out)


def test_a_tampered_log_is_reported_broken_and_exits_1(tmp_path: Path) -> None:
    log, pem = write_log(tmp_path)
    lines = log.read_bytes().splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines) if b'"deny"' in line)
    lines[target] = lines[target].replace(b'"deny"', b'"allow"', 1)
    log.write_bytes(b"".join(lines))
    out = tmp_path / "r.html"
    assert main(["report", str(log), "--public-key", str(pem), "-o", str(out)]) == 1
    assert f"Chain BROKEN at line {target + 1}" in page(out)


def test_statistical_results_from_the_testing_toolkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "stats.jsonl"
    monkeypatch.setenv("AIINVARIANTS_STATS_JSON", str(results))
    assert_holds_with_probability(
        lambda: True,
        max_violation_rate=0.01,
        confidence=0.95,
        invariant="I8",
        name="no canary in 299 answers",
    )
    with pytest.raises(AssertionError):
        assert_holds_with_probability(
            lambda: False,
            max_violation_rate=0.05,
            confidence=0.9,
            n=20,
            invariant="I9",
        )
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["passed"] for r in records] == [True, False]
    assert records[0]["name"] == "no canary in 299 answers"
    assert records[0]["trials"] == 299
    assert records[0]["violations"] == 0
    assert records[0]["upper_bound"] == pytest.approx(0.00997, abs=1e-5)
    # Without a name, the running test's id.
    assert records[1]["name"].endswith(
        "test_statistical_results_from_the_testing_toolkit"
    )
    log, _ = write_log(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", str(log), "--stats", str(results), "-o", str(out)]) == 0
    html = page(out)
    assert "no canary in 299 answers" in html
    assert "0.9969%" in html  # the exact upper bound
    assert "NOT shown" in html
    assert "holds" in html


def test_a_bad_invariant_label_fails_before_any_trial() -> None:
    calls = []
    with pytest.raises(ValueError, match="invariant must be an id"):
        assert_holds_with_probability(
            lambda: calls.append(1) or True,
            max_violation_rate=0.01,
            confidence=0.95,
            invariant="leaks",
        )
    assert calls == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", "line 1: not valid JSON"),
        ('{"trials": 3}\n', "line 1: 'violations' must be a number"),
        (
            '{"trials": 3, "violations": 5, "passed": true}\n',
            "v <= n",
        ),
        ('{"a": 1}', "'trials' must be a number"),
        ("[1, 2]", "item 1: expected a JSON object"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_bad_results_files_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    log, _ = write_log(tmp_path)
    results = tmp_path / "bad.jsonl"
    results.write_text(content)
    out = tmp_path / "r.html"
    assert main(["report", str(log), "--stats", str(results), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(results) in err
    assert message in err
    assert not out.exists()


def test_bad_log_and_output_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "no.jsonl"), "-o", "x.html"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "-o", "x.html"]) == 2
    assert "is a folder" in capsys.readouterr().err
    log, _ = write_log(tmp_path)
    target = tmp_path / "missing-dir" / "r.html"
    assert main(["report", str(log), "-o", str(target)]) == 2
    assert f"cannot write {target}" in capsys.readouterr().err
    assert list((tmp_path).glob(".*partial")) == []


def test_records_of_other_kinds_are_skipped_not_fatal(tmp_path: Path) -> None:
    log, _ = write_log(tmp_path)
    with log.open("a") as f:
        f.write(json.dumps({"kind": "checkpoint", "seq": 6, "hash": "ab"}) + "\n")
        f.write(json.dumps({"event": {"kind": "segment_start"}}) + "\n")
        f.write("not json at all\n")
        f.write("\n")
    summary = read_log(log)
    assert summary.decisions == 5
    # The writer's start record and final checkpoint, and the two appended here.
    assert summary.other_records == 4
    assert summary.unreadable_lines == 1


def event(second: float, invariant: str, decision: str, subject: str) -> dict[str, str]:
    from datetime import datetime

    stamp = datetime.fromtimestamp(second, tz=UTC).isoformat()
    return {
        "invariant": invariant,
        "decision": decision,
        "reason": "r",
        "subject": subject,
        "time": stamp.replace("+00:00", "Z"),
    }


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=4e9, allow_nan=False),
            st.sampled_from(["I1", "I2", "I8", "I13"]),
            st.sampled_from(["allow", "deny", "redact"]),
        ),
        max_size=300,
    )
)
def test_time_buckets_stay_bounded_and_lose_nothing(
    events: list[tuple[float, str, str]],
) -> None:
    summary = LogSummary(path=Path("x"))
    for second, invariant, decision in events:
        summary.add(event(second, invariant, decision, "s"))
    assert len(summary.buckets) <= MAX_BUCKETS
    totals: Counter[tuple[str, str]] = Counter()
    for per in summary.buckets.values():
        for invariant, counts in per.items():
            for decision, count in counts.items():
                totals[invariant, decision] += count
    assert totals == Counter((i, d) for _, i, d in events)
    # Every event sits in the bucket its (recorded, microsecond) time falls in.
    for second, invariant, decision in events:
        when = _timestamp(event(second, invariant, decision, "s")["time"])
        assert when is not None
        assert int(when // summary.width) in summary.buckets


def test_many_buckets_merge_and_many_subjects_are_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aiinvariants._report._read as read

    summary = LogSummary(path=Path("x"))
    summary.deny_subjects = read._Capped(100)
    for i in range(5_000):
        summary.add(event(i * 7.0, "I1", "deny", f"user-{i}"))
    assert len(summary.buckets) <= MAX_BUCKETS
    assert summary.width > 1
    assert len(summary.deny_subjects.counts) == 100
    assert (
        sum(summary.deny_subjects.counts.values()) + summary.deny_subjects.other
        == 5_000
    )


def test_cli_refuses_to_write_the_report_over_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, _ = write_log(tmp_path)
    before = log.read_bytes()
    assert main(["report", str(log), "-o", str(log)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert log.read_bytes() == before
