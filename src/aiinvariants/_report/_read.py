"""Read an audit log and statistical results into bounded summaries.

The log is read as a stream, line by line, in one pass and bounded memory:
counters are keyed by invariant, decision and reason (a small set), time is
kept in at most :data:`MAX_BUCKETS` buckets whose width doubles when needed,
and subjects are counted exactly for the first :data:`MAX_SUBJECTS` distinct
ones, the rest together. Records that are not decisions (checkpoints,
segment headers, kinds a newer writer adds) are counted and otherwise
skipped, so the report keeps working as the audit format grows.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

from aiinvariants._errors import PolicyError

__all__ = ["LogSummary", "StatResult", "Tee", "open_log", "read_log", "read_stats"]

#: Time buckets kept at most; when exceeded, neighbours merge (width x2).
MAX_BUCKETS: Final = 512
#: Distinct subjects (and reasons, resources) counted one by one.
MAX_SUBJECTS: Final = 10_000
#: A line longer than this is not a record the library writes; skipped.
MAX_LINE: Final = 1 << 20
DECISIONS: Final = ("allow", "deny", "redact", "flag")
#: Distinct invariant ids shown one by one (I1-I14 and any a newer writer
#: adds); the rest, only in a hostile log, are counted together.
MAX_INVARIANTS: Final = 64
OTHER_INVARIANTS: Final = "(other ids)"
#: The largest results file read (a result is about 300 bytes).
MAX_STATS: Final = 16 << 20


class _Capped:
    """Exact counts for the first ``limit`` distinct keys, the rest together."""

    def __init__(self, limit: int) -> None:
        self.counts: Counter[str] = Counter()
        self.limit = limit
        self.other = 0

    def add(self, key: str) -> None:
        counts = self.counts
        if key in counts or len(counts) < self.limit:
            counts[key] += 1
        else:
            self.other += 1


@dataclass
class LogSummary:
    """What the report shows about one audit log."""

    path: Path
    records: int = 0
    decisions: int = 0
    other_records: int = 0
    unreadable_lines: int = 0
    first: float | None = None
    last: float | None = None
    by_invariant: dict[str, Counter[str]] = field(default_factory=dict)
    deny_reasons: _Capped = field(default_factory=lambda: _Capped(MAX_SUBJECTS))
    deny_subjects: _Capped = field(default_factory=lambda: _Capped(MAX_SUBJECTS))
    deny_pairs: _Capped = field(default_factory=lambda: _Capped(MAX_SUBJECTS))
    policies: _Capped = field(default_factory=lambda: _Capped(64))
    #: bucket index -> invariant -> decision counts; bucket = floor(t / width)
    buckets: dict[int, dict[str, Counter[str]]] = field(default_factory=dict)
    width: float = 1.0
    _last_policy: object = field(default=None, repr=False)
    _last_stamp: object = field(default=None, repr=False)
    _last_when: float | None = field(default=None, repr=False)
    _skipping: bool = field(default=False, repr=False)

    def _bucket(self, when: float) -> dict[str, Counter[str]]:
        key = math.floor(when / self.width)
        found = self.buckets.get(key)
        if found is not None:
            return found
        while len(self.buckets) >= MAX_BUCKETS:
            self._merge()
            key = math.floor(when / self.width)
            if key in self.buckets:
                return self.buckets[key]
        fresh: dict[str, Counter[str]] = {}
        self.buckets[key] = fresh
        return fresh

    def _merge(self) -> None:
        self.width *= 2
        merged: dict[int, dict[str, Counter[str]]] = {}
        for key, per_invariant in self.buckets.items():
            into = merged.setdefault(key // 2, {})
            for invariant, counts in per_invariant.items():
                into.setdefault(invariant, Counter()).update(counts)
        self.buckets = merged

    def feed(self, chunk: bytes) -> None:
        """Take the next ``readline`` chunk of the log (a line, or a part of
        one longer than :data:`MAX_LINE`, which is skipped as unreadable)."""
        if self._skipping:
            self._skipping = not chunk.endswith(b"\n")
            return
        if len(chunk) > MAX_LINE and not chunk.endswith(b"\n"):
            self.unreadable_lines += 1
            self._skipping = True
            return
        if not chunk.strip():
            return
        self.records += 1
        try:
            record = json.loads(chunk)
        except (ValueError, RecursionError):  # RecursionError: nesting bombs
            self.unreadable_lines += 1
            return
        # A chained record wraps the event; a bare event (a LoggingSink line
        # saved to a file) is read as it is.
        event = record.get("event") if isinstance(record, dict) else None
        if event is None and isinstance(record, dict) and "decision" in record:
            event = record
        if isinstance(event, dict) and "decision" in event:
            self.add(event)
        else:
            self.other_records += 1

    def add(self, event: Mapping[str, Any]) -> None:
        invariant = _text(event.get("invariant"), "unknown")
        if (
            invariant not in self.by_invariant
            and len(self.by_invariant) >= MAX_INVARIANTS
        ):
            # Each invariant is a row with its own timeline: a hostile log
            # of a million made-up ids must not make a million of them.
            invariant = OTHER_INVARIANTS
        decision = event.get("decision")
        if decision not in DECISIONS:
            decision = "unknown"
        self.decisions += 1
        self.by_invariant.setdefault(invariant, Counter())[decision] += 1
        policy = event.get("policy_hash")
        if policy != self._last_policy:  # logs hold long runs of one policy
            self._last_policy = policy
            self.policies.add(_text(policy, "none"))
        stamp = event.get("time")
        if stamp != self._last_stamp:
            self._last_stamp = stamp
            self._last_when = _timestamp(stamp)
        when = self._last_when
        if when is not None:
            self.first = when if self.first is None else min(self.first, when)
            self.last = when if self.last is None else max(self.last, when)
            self._bucket(when).setdefault(invariant, Counter())[decision] += 1
        if decision == "deny":
            reason = _text(event.get("reason"), "unknown")
            subject = _text(event.get("subject"), "-")
            self.deny_reasons.add(f"{invariant} {reason}")
            self.deny_subjects.add(subject)
            self.deny_pairs.add(f"{subject}\n{invariant} {reason}")


def _text(value: object, default: str) -> str:
    if isinstance(value, str) and value:
        return value[:200]
    return default


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = moment.timestamp()
    try:
        # An offset can push a valid local time out of the years a datetime
        # holds ("0001-01-01T00:00:00+23:59"): such a time cannot be shown.
        datetime.fromtimestamp(stamp, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return stamp


def open_log(path: Path) -> BinaryIO:
    """Open the audit log for reading, or say clearly why it cannot be."""
    if path.exists() and not path.is_dir() and not path.is_file():
        # A device or a pipe may never end (/dev/zero): refuse, do not hang.
        raise PolicyError(f"{path} is not a regular file (the audit log to read)")
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise PolicyError(f"{path} does not exist (the audit log to read)") from None
    except IsADirectoryError:
        raise PolicyError(f"{path} is a folder; give the audit log file") from None
    except OSError as exc:
        raise PolicyError(f"cannot read {path}: {exc.strerror}") from None


class Tee:
    """A stream whose every line read is also fed to a summary.

    The chain verifier reads through it, so the summary is built from the
    very bytes that were verified, read once.
    """

    def __init__(self, stream: BinaryIO, summary: LogSummary) -> None:
        self._stream = stream
        self._summary = summary

    def readline(self, size: int = -1, /) -> bytes:
        line = self._stream.readline(size)
        if line:
            self._summary.feed(line)
        return line

    def drain(self) -> None:
        """Feed the rest of the stream (after the verifier stopped)."""
        while self.readline(MAX_LINE + 1):
            pass


def read_log(path: Path) -> LogSummary:
    """Summarise the decisions of the audit log at ``path`` in one pass."""
    summary = LogSummary(path=path)
    with open_log(path) as stream:
        Tee(stream, summary).drain()
    return summary


@dataclass(frozen=True)
class StatResult:
    """One statistical assertion's result, as ``assert_holds_with_probability``
    writes it."""

    name: str
    invariant: str
    trials: int
    violations: int
    observed_rate: float
    upper_bound: float
    max_violation_rate: float
    confidence: float
    passed: bool


def _number(record: Mapping[str, Any], key: str, where: str) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(f"{where}: '{key}' must be a number")
    if not math.isfinite(value) or value < 0:
        raise PolicyError(f"{where}: '{key}' must be a finite number >= 0")
    return float(value)


def _stat(record: object, where: str) -> StatResult:
    if not isinstance(record, dict):
        raise PolicyError(f"{where}: expected a JSON object")
    trials = _number(record, "trials", where)
    violations = _number(record, "violations", where)
    if trials != int(trials) or violations != int(violations) or violations > trials:
        raise PolicyError(f"{where}: trials and violations must be whole, v <= n")
    passed = record.get("passed")
    if not isinstance(passed, bool):
        raise PolicyError(f"{where}: 'passed' must be true or false")
    result = StatResult(
        name=_text(record.get("name"), "(unnamed)"),
        invariant=_text(record.get("invariant"), "-"),
        trials=int(trials),
        violations=int(violations),
        observed_rate=_number(record, "observed_rate", where),
        upper_bound=_number(record, "upper_bound", where),
        max_violation_rate=_number(record, "max_violation_rate", where),
        confidence=_number(record, "confidence", where),
        passed=passed,
    )
    _check_claims(result, where)
    return result


def _check_claims(r: StatResult, where: str) -> None:
    """Check a result's numbers against each other: "holds" is shown only
    for what they prove, never on the record's own word.

    Cheap checks only (a results file may hold many records): the exact
    bound for ``v`` violations is at least the closed-form bound for none,
    and at least ``v / n``.
    """
    from aiinvariants.testing._stats import clopper_pearson_upper

    if r.trials < 1 or not 0 < r.confidence < 1:
        raise PolicyError(f"{where}: needs trials >= 1 and 0 < confidence < 1")
    if max(r.observed_rate, r.upper_bound, r.max_violation_rate) > 1:
        raise PolicyError(f"{where}: a rate above 1")
    rate = r.violations / r.trials
    floor = max(clopper_pearson_upper(0, r.trials, r.confidence), rate)
    if (
        not math.isclose(r.observed_rate, rate, rel_tol=1e-9, abs_tol=1e-12)
        or r.upper_bound < floor * (1 - 1e-9)
        or r.passed != (r.upper_bound <= r.max_violation_rate)
    ):
        raise PolicyError(
            f"{where}: the numbers do not support the result (an upper bound "
            f"below what {r.violations} violation(s) in {r.trials} trials can "
            "show, an observed rate that is not violations/trials, or a "
            "verdict the bound does not give)"
        )


def _why(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    return "a number too long to read"  # over Python's 4300-digit limit


def read_stats(path: Path) -> list[StatResult]:
    """Read results: JSON Lines (as written by the testing toolkit) or an array.

    Raises:
        PolicyError: the file is missing, not JSON, or a record lacks a field;
            the message names the file and line.
    """
    if path.exists() and not path.is_dir() and not path.is_file():
        raise PolicyError(f"{path} is not a regular file (the --stats results)")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_STATS + 1)
        if len(data) > MAX_STATS:
            raise PolicyError(
                f"{path} is over {MAX_STATS >> 20} MiB (the --stats results)"
            )
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path} does not exist (the --stats results)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read {path} as UTF-8 JSON: {exc}") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except RecursionError:
            raise PolicyError(f"{path}: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, or a 5000-digit number
            raise PolicyError(f"{path}: not valid JSON ({_why(exc)})") from None
        if not isinstance(records, list):
            raise PolicyError(f"{path}: expected a JSON array of results")
        return [_stat(r, f"{path} item {i + 1}") for i, r in enumerate(records)]
    results = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            raise PolicyError(f"{path} line {number}: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, or a 5000-digit number
            raise PolicyError(
                f"{path} line {number}: not valid JSON ({_why(exc)})"
            ) from None
        results.append(_stat(record, f"{path} line {number}"))
    return results
