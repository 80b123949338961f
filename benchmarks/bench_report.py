"""``aiinvariants report`` on large audit logs (issue #17).

For logs of 10k, 100k and 1M decisions (written by the real ``JSONLSink``),
side by side in one run: the time to summarise the log, to verify its chain
(``verify_chain``, the floor any report must pay) and to write the whole
report, per decision; and each size's peak memory, measured in a fresh
process so the sizes do not share a heap. Linear time shows as a constant
time per decision; bounded memory as a peak that does not grow with the log.

``AIINVARIANTS_BENCH_REPORT_SIZES=10000,100000`` picks other sizes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiinvariants._report import write_report
from aiinvariants._report._read import read_log
from aiinvariants.audit import AuditEvent, JSONLSink, verify_chain

_KINDS = [
    ("I1", "allow", "scopes_held"),
    ("I1", "deny", "scope_missing"),
    ("I2", "allow", "retrieved"),
    ("I5", "allow", "model_allowed"),
    ("I8", "redact", "pii-email"),
    ("I8", "deny", "aws-access-key-id"),
    ("I12", "deny", "tainted_run_needs_confirmation"),
]
_PEAK = """
import resource, sys
from pathlib import Path
from aiinvariants._report import write_report
write_report(Path(sys.argv[1]), Path(sys.argv[2]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _write(path: Path, events: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with JSONLSink(path) as sink:
        for i in range(events):
            invariant, decision, reason = _KINDS[i % len(_KINDS)]
            when = start + timedelta(seconds=i * 30)  # about a year at 1M
            sink.write(
                AuditEvent(
                    time=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    invariant=invariant,
                    decision=decision,  # type: ignore[arg-type]
                    reason=reason,
                    subject=f"user-{i % 50_000}",  # more than the exact cap
                    resource="tool.x",
                    policy_hash="sha256:" + "ab" * 32,
                )
            )


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def _peak_mb(log: Path, out: Path) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, str(log), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux


def run() -> None:
    sizes = [
        int(n)
        for n in os.environ.get(
            "AIINVARIANTS_BENCH_REPORT_SIZES", "10000,100000,1000000"
        ).split(",")
    ]
    print("\naiinvariants report on large logs (per decision; peak RSS per size)")
    print(
        f"  {'decisions':>10}  {'summary':>9}  {'verify_chain':>12}  "
        f"{'whole report':>12}  {'report/verify':>13}  {'peak RSS':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            log, out = Path(tmp) / f"audit-{n}.jsonl", Path(tmp) / f"report-{n}.html"
            _write(log, n)
            # Interleaved, best of 3 each, so a busy moment hits all alike.
            summary, verify, report = [], [], []
            for _ in range(3):
                summary.append(_timed(lambda log=log: read_log(log)))
                verify.append(_timed(lambda log=log: verify_chain(log)))
                report.append(_timed(lambda log=log, out=out: write_report(log, out)))
            s, v, r = min(summary), min(verify), min(report)
            peak = _peak_mb(log, out)
            print(
                f"  {n:>10}  {s / n * 1e6:>7.1f}us  {v / n * 1e6:>10.1f}us  "
                f"{r / n * 1e6:>10.1f}us  {r / v:>12.2f}x  {peak:>6.0f} MB"
                f"   (whole report {r:.1f} s, {out.stat().st_size // 1024} KiB)"
            )
            log.unlink()
