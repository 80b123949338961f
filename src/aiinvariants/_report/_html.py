"""Render a summary as one self-contained HTML page: inline CSS and SVG, no JS.

Everything taken from the log is escaped, and a Content-Security-Policy
forbids scripts and every network fetch, so a log written by someone
hostile (a subject named ``<script>``) can neither run code nor call out
when the report is opened.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from aiinvariants._report._read import LogSummary, StatResult
from aiinvariants.audit import ChainReport

__all__ = ["render"]

#: Plain-language names of the invariants (DESIGN.md), for headings.
NAMES: Final = {
    "I1": "AI access uses the user's authorization",
    "I2": "public tools reach public data only",
    "I3": "forbidden capabilities unreachable",
    "I4": "downstream tokens audience-bound",
    "I5": "allowed model families only",
    "I6": "allowed regions only",
    "I7": "data-use opt-out set",
    "I8": "no credential or prompt leaks",
    "I9": "no disparagement",
    "I10": "banned content blocked",
    "I11": "high-risk uses approved",
    "I12": "tainted runs confirm before sending",
    "I13": "tamper-evident audit trail",
    "I14": "behaviour tested statistically",
}
COLORS: Final = {
    "allow": "#3b8f5a",
    "deny": "#c8372d",
    "redact": "#d59a18",
    "flag": "#7a5fb0",
}
TOP: Final = 15

CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
margin:0;color:#1d232b;background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.meta{color:#5b6573;margin:0 0 16px}
.banner{padding:12px 16px;border-radius:6px;font-weight:600;margin:12px 0}
.ok{background:#e3f3e8;border:1px solid #3b8f5a;color:#1f5a35}
.bad{background:#fbe5e3;border:1px solid #c8372d;color:#7c1d16}
.warn{background:#fdf3dc;border:1px solid #d59a18;color:#6b4c07}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:5px 8px;border-bottom:1px solid #e3e6ea;text-align:left;
vertical-align:middle}
th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#5b6573}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;
border-radius:2px;vertical-align:baseline}
code{font-size:12px}
.pass{color:#1f5a35;font-weight:600}.fail{color:#7c1d16;font-weight:600}
"""


def _e(value: object) -> str:
    # Lone surrogates (a JSON "\\ud800" escape in a logged field, a byte of
    # a file name that is not UTF-8) cannot be written as UTF-8: shown as "?".
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    return html.escape(text, quote=True)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    moment = datetime.fromtimestamp(stamp, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _natural(text: str) -> tuple[int | str, ...]:
    """Sort key in which I2 comes before I10."""
    # Odd positions are the ASCII digit runs ("²" is a digit to isdigit()).
    parts = re.split(r"([0-9]+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


_INVARIANT_ID: Final = re.compile(r"I([0-9]{1,4})")


def _invariant_key(name: str) -> tuple[int, int, str]:
    found = _INVARIANT_ID.fullmatch(name)
    if found:
        return (0, int(found.group(1)), name)
    return (1, 0, name)


def _invariant_order(names: Iterable[str]) -> list[str]:
    return sorted(names, key=_invariant_key)


def _banner(
    chain: ChainReport, *, key_given: bool, anchored: bool, summary: LogSummary
) -> str:
    if not chain.ok:
        return (
            f'<div class="banner bad" id="verification">Chain BROKEN at line '
            f"{_e(chain.first_bad_line)}: {_e(chain.reason)}. {chain.lines} line(s) "
            "before it verify; nothing after it can be trusted.</div>"
        )
    if chain.signatures_verified:
        sig = (
            "every segment's start and Ed25519-signed checkpoints verified with "
            "the given public key (a checkpoint covers every record before it)"
        )
        css = "ok"
    elif key_given:  # pragma: no cover - verify_chain fails instead
        sig, css = "signatures NOT verified", "bad"
    elif chain.signed:
        sig = "segments are signed, but no --public-key was given to check them"
        css = "warn"
    else:
        sig = "segments are not signed: the chain shows consistency, not authorship"
        css = "warn"
    extra = ""
    if summary.unreadable_lines:
        extra = f"; {summary.unreadable_lines} unreadable line(s)"
    if anchored:
        extra += "; the log reaches the given --anchor"
    else:
        # A valid prefix verifies too: only an anchor shows that nothing was
        # cut off the end (deleted denials, say).
        extra += "; no --anchor given, so lines cut off the end would go unnoticed"
    return (
        f'<div class="banner {css}" id="verification">Chain intact: '
        f"{chain.lines} line(s) hash-chained, last hash "
        f"<code>{_e((chain.last_hash or '-')[:16])}…</code>; {sig}{extra}.</div>"
    )


def _timeline(summary: LogSummary, invariant: str, start: int, span: int) -> str:
    width, height = 520, 34
    step = width / span
    peak = 1
    columns: list[tuple[int, Counter[str]]] = []
    for key, per in summary.buckets.items():
        counts = per.get(invariant)
        if counts:
            columns.append((key - start, counts))
            peak = max(peak, sum(counts.values()))
    bars = []
    for offset, counts in sorted(columns):
        x = offset * step
        y = float(height)
        for decision in ("allow", "redact", "flag", "deny"):
            count = counts.get(decision, 0)
            if not count:
                continue
            h = max(1.0, count / peak * (height - 2))
            y -= h
            bars.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step - 0.5, 0.8):.1f}" '
                f'height="{h:.1f}" fill="{COLORS[decision]}"/>'
            )
    return (
        f'<svg role="img" aria-label="{_e(invariant)} decisions over time" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="#f5f6f8"/>'
        + "".join(bars)
        + "</svg>"
    )


def _over_time(summary: LogSummary) -> str:
    keys = list(summary.buckets) or [0]
    start, span = min(keys), max(keys) - min(keys) + 1
    rows = []
    # Every invariant gets a row: one with no decisions is visible as such.
    for invariant in _invariant_order({*NAMES, *summary.by_invariant}):
        counts = summary.by_invariant.get(invariant, Counter())
        cells = "".join(
            f'<td class="n">{counts.get(d, 0)}</td>' for d in ("allow", "deny")
        )
        other = sum(counts.values()) - counts.get("allow", 0) - counts.get("deny", 0)
        rows.append(
            f"<tr><td><b>{_e(invariant)}</b> {_e(NAMES.get(invariant, ''))}</td>"
            f'{cells}<td class="n">{other}</td>'
            f"<td>{_timeline(summary, invariant, start, span)}</td></tr>"
        )
    legend = "".join(
        f'<span><i class="sw" style="background:{c}"></i>{d}</span>'
        for d, c in COLORS.items()
    )
    seconds = summary.width
    return (
        f'<p class="legend">{legend} &nbsp; one column = {_e(_duration(seconds))}, '
        f"from {_e(_when(summary.first))} to {_e(_when(summary.last))}</p>"
        '<table id="over-time"><tr><th>invariant</th><th>allow</th><th>deny</th>'
        "<th>other</th><th>decisions over time</th></tr>" + "".join(rows) + "</table>"
    )


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}(s)"
    return f"{seconds:.3g} second(s)"


def _bars(title: str, items: Sequence[tuple[str, int]], other: int, css_id: str) -> str:
    if not items:
        return f'<div class="card" id="{css_id}"><b>{_e(title)}</b><p>none</p></div>'
    width, row = 480, 22
    label_w = 220
    peak = max(count for _, count in items)
    parts = []
    for i, (label, count) in enumerate(items):
        y = i * row
        w = max(1.0, count / peak * (width - label_w - 60))
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{_e(label[:34])}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="14" '
            f'fill="{COLORS["deny"]}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12">'
            f"{count}</text>"
        )
    height = len(items) * row + 4
    more = f"<p>… and {other} more</p>" if other else ""
    return (
        f'<div class="card" id="{css_id}"><b>{_e(title)}</b>'
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>'
        f"{more}</div>"
    )


def _top(counter: Counter[str], extra: int) -> tuple[list[tuple[str, int]], int]:
    ranked = sorted(counter.items(), key=lambda item: (-item[1], _natural(item[0])))
    rest = sum(count for _, count in ranked[TOP:]) + extra
    return ranked[:TOP], rest


def _denials(summary: LogSummary) -> str:
    reasons, other_reasons = _top(
        summary.deny_reasons.counts, summary.deny_reasons.other
    )
    subjects, other_subjects = _top(
        summary.deny_subjects.counts, summary.deny_subjects.other
    )
    pairs, _ = _top(summary.deny_pairs.counts, summary.deny_pairs.other)
    who = "".join(
        f"<tr><td>{_e(pair.split(chr(10), 1)[0])}</td>"
        f"<td><code>{_e(pair.split(chr(10), 1)[1])}</code></td>"
        f'<td class="n">{count}</td></tr>'
        for pair, count in pairs
    )
    return (
        '<div class="grid">'
        + _bars("denials by invariant and reason", reasons, other_reasons, "reasons")
        + _bars("denials by subject", subjects, other_subjects, "subjects")
        + "</div><h2>Who was refused what</h2>"
        '<table id="who"><tr><th>subject</th><th>invariant and reason</th>'
        f"<th>denials</th></tr>{who or '<tr><td colspan=3>none</td></tr>'}</table>"
    )


def _rate_bar(result: StatResult) -> str:
    width, height = 200, 16
    top = max(result.upper_bound, result.max_violation_rate, 1e-12) * 1.15

    def x(rate: float) -> float:
        return min(rate / top, 1.0) * width

    colour = COLORS["allow"] if result.passed else COLORS["deny"]
    return (
        f'<svg role="img" aria-label="upper bound against target" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="#f5f6f8"/>'
        f'<rect y="4" width="{x(result.upper_bound):.1f}" height="8" '
        f'fill="{colour}"/>'
        f'<rect x="{x(result.observed_rate):.1f}" y="1" width="2" height="14" '
        'fill="#1d232b"/>'
        f'<rect x="{x(result.max_violation_rate):.1f}" y="0" width="2" '
        f'height="{height}" fill="#c8372d"/></svg>'
    )


def _stats(results: Sequence[StatResult] | None) -> str:
    if results is None:
        return ""
    rows = []
    for r in sorted(results, key=lambda r: (_invariant_key(r.invariant), r.name)):
        verdict = (
            '<span class="pass">holds</span>'
            if r.passed
            else ('<span class="fail">NOT shown</span>')
        )
        rows.append(
            f"<tr><td>{_e(r.invariant)}</td><td>{_e(r.name)}</td>"
            f'<td class="n">{r.trials}</td><td class="n">{r.violations}</td>'
            f'<td class="n">{r.observed_rate:.4%}</td>'
            f'<td class="n">{r.upper_bound:.4%}</td>'
            f'<td class="n">≤ {r.max_violation_rate:.4%} at {r.confidence:.0%}</td>'
            f"<td>{verdict}</td><td>{_rate_bar(r)}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="9">no results in the file</td></tr>'
    return (
        "<h2>Statistical evidence (I14)</h2><p>Each row: trials run, violations "
        "seen, the observed rate and the exact (Clopper-Pearson) one-sided upper "
        "bound on the violation rate, against the target. Bar: the bound; black "
        "tick: observed rate; red tick: target.</p>"
        '<table id="stats"><tr><th>inv.</th><th>what</th><th>trials</th>'
        "<th>violations</th><th>observed</th><th>upper bound</th><th>target</th>"
        f"<th>verdict</th><th></th></tr>{body}</table>"
    )


def render(
    summary: LogSummary,
    chain: ChainReport,
    *,
    key_given: bool,
    anchored: bool = False,
    stats: Sequence[StatResult] | None,
    generated: float,
) -> str:
    """The whole page."""
    policies = ", ".join(
        f"<code>{_e(p[:23])}…</code>" for p in sorted(summary.policies.counts)
    )
    denied = sum(c.get("deny", 0) for c in summary.by_invariant.values())
    other = ""
    if summary.other_records:
        other = f"; {summary.other_records} other record(s) (not decisions) skipped"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>aiinvariants report: {_e(summary.path.name)}</title>"
        f"<style>{CSS}</style></head><body><main>"
        f"<h1>Audit report: {_e(summary.path.name)}</h1>"
        f'<p class="meta">{summary.decisions} decisions ({denied} denied) from '
        f"{_e(_when(summary.first))} to {_e(_when(summary.last))}{other}. "
        f"Policies: {policies or '-'}. Generated {_e(_when(generated))}.</p>"
        + _banner(chain, key_given=key_given, anchored=anchored, summary=summary)
        + "<h2>Decisions over time, per invariant</h2>"
        + _over_time(summary)
        + _stats(stats)
        + "<h2>Denials</h2>"
        + _denials(summary)
        + "</main></body></html>\n"
    )
