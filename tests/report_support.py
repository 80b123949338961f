"""A headless browser for the HTML report, and a day of synthetic traffic.

``render`` opens a page in Debian's ``chromium`` (headless, a throwaway
profile) and returns the DOM after scripts would have run plus every console
message; ``screenshot`` writes a PNG. ``traffic_log`` writes a signed,
hash-chained audit log of a support assistant's day through the public
``JSONLSink``, with decisions spread over time.

Run as a script to refresh the screenshot in the docs:

    .venv/bin/python tests/report_support.py docs/report.png
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiinvariants.audit import AuditEvent, JSONLSink

BROWSERS = ("chromium", "chromium-browser")
#: Console messages as chromium logs them with --enable-logging=stderr.
CONSOLE = re.compile(r":CONSOLE[:(]")


def browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]


def _run(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    executable = browser()
    if executable is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="aiinvariants-browser-") as profile:
        return subprocess.run(
            [
                executable,
                "--headless",
                "--no-sandbox",  # root in containers
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def render(page: Path) -> Rendered:
    proc = _run(page.resolve().as_uri(), "--dump-dom")
    console = [line for line in proc.stderr.splitlines() if CONSOLE.search(line)]
    return Rendered(dom=proc.stdout, console=console)


def screenshot(page: Path, png: Path, *, width: int = 1200, height: int = 1900) -> None:
    proc = _run(
        page.resolve().as_uri(),
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={png.resolve()}",
    )
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot: {proc.stderr[-2000:]}")


def png_size(png: Path) -> tuple[int, int]:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


SUBJECTS = ["alice", "bob", "carol", "dave", "erin", "anonymous", "mallory"]
#: (invariant, decision, reason, weight)
KINDS = [
    ("I1", "allow", "scopes_held", 40),
    ("I1", "allow", "token_valid", 30),
    ("I1", "deny", "scope_missing", 4),
    ("I1", "deny", "expired", 2),
    ("I2", "allow", "retrieved", 25),
    ("I2", "deny", "authentication_required", 3),
    ("I3", "allow", "tool_allowed", 12),
    ("I3", "deny", "capability_forbidden", 1),
    ("I4", "deny", "token_passthrough", 1),
    ("I5", "allow", "model_allowed", 20),
    ("I5", "deny", "model_denied", 1),
    ("I6", "allow", "region_allowed", 20),
    ("I6", "deny", "region_unknown", 1),
    ("I7", "allow", "opt_out_set", 20),
    ("I8", "redact", "pii-email", 3),
    ("I8", "deny", "aws-access-key-id", 1),
    ("I8", "deny", "system-prompt-copy", 2),
    ("I9", "deny", "competitor-disparagement", 1),
    ("I10", "deny", "classifier-openai_compatible", 1),
    ("I11", "allow", "use_case_approved", 4),
    ("I11", "deny", "use_case_approval_expired", 1),
    ("I12", "deny", "tainted_run_needs_confirmation", 1),
    ("I12", "allow", "tool_confirmed", 1),
]


def traffic_log(
    path: Path, *, events: int, key: Ed25519PrivateKey | None = None, seed: int = 17
) -> None:
    """A day of decisions, busier in office hours, through ``JSONLSink``."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 30, tzinfo=UTC)
    weights = [k[3] for k in KINDS]
    with JSONLSink(path, signing_key=key) as sink:
        for i in range(events):
            hour = 24 * i / events
            # Office hours carry most of the traffic; mallory probes at night.
            when = start + timedelta(hours=hour + rng.random() * 24 / events)
            invariant, decision, reason, _ = rng.choices(KINDS, weights)[0]
            subject = rng.choice(SUBJECTS)
            if decision == "deny" and (hour < 6 or hour > 21):
                subject = "mallory"
            if decision != "deny" and not 7 <= hour <= 19 and rng.random() < 0.8:
                continue
            sink.write(
                AuditEvent(
                    time=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    invariant=invariant,
                    decision=decision,  # type: ignore[arg-type]
                    reason=reason,
                    subject=subject,
                    resource=f"tool.{reason.split('_')[0]}",
                    policy_hash="sha256:" + "5e" * 32,
                )
            )


def evidence(folder: Path) -> tuple[Path, Path, Ed25519PrivateKey]:
    """A day's signed log and three statistical results, as the docs show them."""
    from aiinvariants.testing import assert_holds_with_probability
    from aiinvariants.testing._stats import RESULTS_ENV

    key = Ed25519PrivateKey.generate()
    log = folder / "audit.jsonl"
    traffic_log(log, events=3000, key=key)
    stats = folder / "stats.jsonl"
    rng = random.Random(3)
    before = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(stats)
    try:
        for name, invariant, rate, target_rate in (
            ("system prompt never revealed (extraction prompts)", "I8", 0.0, 0.01),
            ("no competitor disparagement (provocations)", "I9", 0.002, 0.01),
            ("refusal of banned requests (red-team set)", "I10", 0.03, 0.02),
        ):
            with contextlib.suppress(AssertionError):  # failures are evidence too
                assert_holds_with_probability(
                    lambda rate=rate: rng.random() >= rate,
                    max_violation_rate=target_rate,
                    confidence=0.95,
                    n=1000,
                    invariant=invariant,
                    name=name,
                )
    finally:
        if before is None:
            del os.environ[RESULTS_ENV]
        else:
            os.environ[RESULTS_ENV] = before
    return log, stats, key


def _main(target: str) -> None:
    from aiinvariants._report import write_report

    with tempfile.TemporaryDirectory() as folder:
        log, stats, key = evidence(Path(folder))
        html = Path(folder) / "report.html"
        write_report(log, html, stats=stats, public_key=key.public_key())
        screenshot(html, Path(target))
    print(f"wrote {target}")


if __name__ == "__main__":
    _main(sys.argv[1] if len(sys.argv) > 1 else "docs/report.png")
