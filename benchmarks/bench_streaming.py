"""Streaming and canonical matching (issue #13): latency, cost, false positives.

Side by side in one run:

* how many characters of a clean 2 KB answer, streamed in 4-character
  chunks through the default pipeline with a registered system prompt, must
  arrive before the first character is emitted (default guard, the guard with
  the fixed batch of ``L + 2C`` characters that was the default before, and
  an unguarded stream);
* a whole 100 KB stream against one ``check()`` of the same text (and the
  floor: the same number of calls to a feed method that does nothing);
* a masked span that keeps growing (back-to-back registered secrets, the
  worst case for holding back) at doubling sizes: time per MB must stay flat;
* how often the protected-text and competitor filters fire on clean corpora
  text (``../shared/corpora``, read when present), which canonical matching
  (lookalikes, spaces, entities folded) must not raise.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import time
from pathlib import Path

from aiinvariants.audit import AuditLog
from aiinvariants.audit._sinks import MemorySink
from aiinvariants.filters import (
    CompetitorFilter,
    OutputPipeline,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
    ToolOutputLeakFilter,
)

from .bench_filters import (
    CORPORA,
    PROMPT,
    PROSE,
    alternating,
    chunked,
    default_pipeline,
    make_text,
    side_by_side,
    stream,
)

SECRET = "Zq9-vLm2#Rt8Kp4X"


def clean_answer(size: int, seed: int = 13) -> str:
    rnd = random.Random(seed)
    words: list[str] = []
    total = 0
    while total < size:
        word = rnd.choice(PROSE)
        words.append(word)
        total += len(word) + 1
    return " ".join(words)[:size]


def first_emission(pipeline: OutputPipeline | None, text: str, size: int) -> int:
    """Characters fed before the first non-empty output."""
    guard = StreamGuard(pipeline) if pipeline is not None else None
    fed = 0
    for chunk in chunked(text, size):
        fed += len(chunk)
        if guard is None or guard.feed(chunk):
            return fed
    return fed


def first_emission_fixed(pipeline: OutputPipeline, text: str, size: int) -> int:
    guard = StreamGuard(pipeline, batch=pipeline.max_finding + 2 * pipeline.context)
    fed = 0
    for chunk in chunked(text, size):
        fed += len(chunk)
        if guard.feed(chunk):
            return fed
    return fed


class _NoGuard:
    """The floor: a feed method that only counts."""

    def __init__(self) -> None:
        self.n = 0

    def feed(self, chunk: str) -> str:
        self.n += len(chunk)
        return ""


class _KeepGuard:
    """The least a guard written in Python does per chunk: keep it, count it,
    check its type and whether a scan is due (StreamGuard.feed's fast path,
    which never scans here). Its cost against one check is the floor of any
    per-chunk guard, whatever its schedule."""

    def __init__(self) -> None:
        self._known = 0
        self._next_scan = 1 << 62
        self._parts: list[str] = []

    def feed(self, chunk: str) -> str:
        known = self._known + len(chunk)
        if known < self._next_scan and chunk.__class__ is str:
            self._parts.append(chunk)
            self._known = known
            return ""
        raise AssertionError("never due")


def keep_only(pipeline: OutputPipeline, chunks: list[str]) -> str:
    """The floor's stream: every chunk fed to :class:`_KeepGuard`, then one
    check of the joined text (the least any guard must scan)."""
    guard = _KeepGuard()
    feed = guard.feed
    out = [feed(chunk) for chunk in chunks]
    out.append(pipeline.check("".join(guard._parts)).text)
    return "".join(out)


def latency() -> None:
    pipeline = default_pipeline()
    text = clean_answer(2048)
    print("\nStreaming latency: characters in before the first character out")
    print("  (clean 2 KB answer, 4-character chunks, default pipeline with a")
    print("  registered system prompt; goal <= 64)")
    print(f"  {'StreamGuard (default)':<36} {first_emission(pipeline, text, 4):>5}")
    fixed = first_emission_fixed(pipeline, text, 4)
    print(f"  {'StreamGuard(batch=L+2C), old default':<36} {fixed:>5}")
    print(f"  {'unguarded':<36} {first_emission(None, text, 4):>5}")
    guard = StreamGuard(pipeline, scan_share=1)
    worst = 0
    for chunk in chunked(text, 4):
        guard.feed(chunk)
        worst = max(worst, guard.held_back)
    former = _HalvesGuard(pipeline, scan_share=1)
    worst_former = 0
    for chunk in chunked(text, 4):
        former.feed(chunk)
        worst_former = max(worst_former, former.held_back)
    print(
        f"  most characters held back at once over the 2 KB (character"
        f" schedule, scan_share=1): {worst} (schedule before this round:"
        f" {worst_former})"
    )
    long_text = make_text(100_000)
    for label, kind in (("", StreamGuard), (", schedule before", _HalvesGuard)):
        guard = kind(default_pipeline(action="redact"), scan_share=1)
        held = []
        for chunk in chunked(long_text, 4):
            guard.feed(chunk)
            held.append(guard.held_back)
        held.sort()
        print(
            f"  over a 100 KB answer (prose, code, a few secrets; redact; character"
            f" schedule{label}): median {held[len(held) // 2]}, most {held[-1]}"
            " characters held back"
        )
    guard = StreamGuard(default_pipeline(action="redact"))
    held = []
    for chunk in chunked(long_text, 4):
        guard.feed(chunk)
        held.append(guard.held_back)
    held.sort()
    print(
        f"  the same, default guard fed as fast as this loop runs (scans"
        f" budgeted): median {held[len(held) // 2]}, most {held[-1]}"
    )
    clean = clean_answer(100_000)
    for label, guard in (
        ("character schedule", StreamGuard(pipeline, scan_share=1)),
        ("character schedule before", _HalvesGuard(pipeline, scan_share=1)),
        ("default guard, fed as fast as this loop runs", StreamGuard(pipeline)),
        ("the same, schedule before", _HalvesGuard(pipeline)),
    ):
        held = []
        for chunk in chunked(clean, 4):
            guard.feed(chunk)
            held.append(guard.held_back)
        guard.close()
        held.sort()
        print(
            f"  clean 100 KB answer, 4-character chunks, {label}: median"
            f" {held[len(held) // 2]}, most {held[-1]} characters held back"
        )


def cost() -> None:
    redacting = default_pipeline(action="redact")
    text = make_text(100_000)
    expected = redacting.check(text).text
    copy = alternating(text)  # a new string per call, as a new answer is
    chunks = chunked(text, 4)
    assert stream(redacting, chunks, None) == expected
    print("\nStreaming 100 KB in 4-character chunks (redact mode), vs one check()")
    print("  (feed() for every chunk plus close(), measured alternately in CPU time")
    print("  of this thread; goal <= 1.5x)")

    def floor() -> None:
        feed = _NoGuard().feed
        for chunk in chunks:
            feed(chunk)

    base = redacting.max_finding + 2 * redacting.context
    # The same filters with an audit log: the stream writes one event per
    # filter per answer, at close() (the one-shot side is not audited).
    audited = OutputPipeline(redacting.filters, audit=AuditLog([MemorySink()]))
    for label, run in (
        ("StreamGuard (default)", lambda: stream(redacting, chunks, None)),
        ("StreamGuard (default), audited", lambda: stream(audited, chunks, None)),
        (
            "StreamGuard(scan_share=1), char steps",
            lambda: charwise(redacting, chunks),
        ),
        (f"StreamGuard(batch={base})", lambda: stream(redacting, chunks, base)),
        ("StreamGuard(batch=64)", lambda: stream(redacting, chunks, 64)),
        ("floor: 25,000 calls to a no-op feed", floor),
    ):
        one, spent, ratio = side_by_side(
            lambda: redacting.check(copy()), run, clock=time.thread_time
        )
        print(
            f"  {label:<38} {spent * 1e3:8.1f} ms = {ratio:5.2f}x one-shot "
            f"({one * 1e3:.1f} ms)"
        )
    print(
        "  the default StreamGuard by chunk size (goal <= 1.5x; issue #13 at the"
        " end of the last session: 2.12x, 1.59x, 1.41x pure, 2.89x, 2.00x, 1.66x"
        " re2 at 4, 16, 64), the floor of any per-chunk guard (every chunk kept"
        " and counted by a Python feed, then one check), the schedule before this"
        " round (head grown by half, then every eighth), and on the character"
        " schedule alone"
        " (scan_share=1: what a stream at reading pace scans)"
    )
    pure = default_pipeline(action="redact")
    pure.get(SecretsFilter)._use_native = False  # the default install: no re2
    engines = [("pure Python", pure)]
    for name in ("re2", "hyperscan"):  # each installed native engine (#13)
        if pure.get(SecretsFilter)._native_for(name) is not None:
            native = default_pipeline(action="redact")
            native.get(SecretsFilter)._engine = name
            engines.append((name, native))
    for schedule, runner in (
        ("", stream_default),
        (", floor (keep + one check)", keep_only),
        (", schedule before", stream_halves),
        (", char steps", charwise),
    ):
        for engine, p in engines:
            for size in (4, 16, 64):
                sized = chunked(text, size)
                one, spent, ratio = side_by_side(
                    lambda p=p: p.check(copy()),
                    lambda s=sized, p=p, r=runner: r(p, s),
                    clock=time.thread_time,
                )
                label = f"{size}-character chunks, {engine}{schedule}"
                print(
                    f"  {label:<62} {spent * 1e3:8.1f} ms = "
                    f"{ratio:5.2f}x one-shot ({one * 1e3:.1f} ms)"
                )


def stream_default(pipeline: OutputPipeline, chunks: list[str]) -> str:
    return stream(pipeline, chunks, None)


class _HalvesGuard(StreamGuard):
    """The schedule before this round: the head is scanned each time it has
    grown by half (9 scans up to 512 characters, not 6), the rest every
    eighth of what has arrived (up to L + 2C), not every quarter of what
    the next scan reads."""

    def _step(self) -> int:
        share = 2 if self._known < 512 else 8
        return min(self._max_step, max(16, self._known // share))


def stream_halves(pipeline: OutputPipeline, chunks: list[str]) -> str:
    guard = _HalvesGuard(pipeline)
    feed = guard.feed
    out = [feed(chunk) for chunk in chunks]
    out.append(guard.close())
    return "".join(out)


def charwise(pipeline: OutputPipeline, chunks: list[str]) -> str:
    """The stream on the character schedule alone (``scan_share=1``)."""
    guard = StreamGuard(pipeline, scan_share=1)
    feed = guard.feed
    out = [feed(chunk) for chunk in chunks]
    out.append(guard.close())
    return "".join(out)


def growing_span() -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact", registered=[SECRET])])
    print("\nA masked span that keeps growing: back-to-back registered secrets,")
    print("streamed in 4 KB chunks (time per MB must not grow with the size)")
    chunk = SECRET * 256
    per_mb: list[float] = []
    for megabytes in (0.5, 1, 2, 4, 8):
        count = int(megabytes * 1_000_000 / len(chunk))
        guard = StreamGuard(pipeline)
        start = time.perf_counter()
        out = [guard.feed("start ")]
        worst = 0
        for _ in range(count):
            out.append(guard.feed(chunk))
            worst = max(worst, guard.held_back)
        out.append(guard.feed(" end"))
        out.append(guard.close())
        elapsed = time.perf_counter() - start
        assert "".join(out) == "start [REDACTED] end"
        per_mb.append(elapsed / megabytes)
        print(
            f"  {megabytes:>4} MB: {elapsed:6.2f} s = {elapsed / megabytes:5.2f} s/MB,"
            f" at most {worst} characters held back"
        )
    print(f"  ratio of s/MB, largest to smallest: {per_mb[-1] / per_mb[0]:.2f}")


def _clean_texts() -> dict[str, list[str]]:
    corpora = Path(os.environ.get("AIINV_CORPORA", str(CORPORA)))
    out: dict[str, list[str]] = {}
    bipia = corpora / "pi-bipia"
    for name in ("email", "table", "code"):
        path = bipia / name / "test.jsonl"
        if path.exists():
            rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
            out[f"bipia {name} contexts"] = [
                str(r.get("context", "")) for r in rows if r.get("context")
            ]
    presidio = corpora / "pii-presidio" / "synth_dataset_v2.json.gz"
    if presidio.exists():
        with gzip.open(presidio, "rt", encoding="utf-8") as fh:
            out["presidio sentences"] = [str(r["full_text"]) for r in json.load(fh)]
    return out


def false_positives() -> None:
    corpora = _clean_texts()
    print("\nCanonical matching on clean corpora text: how often filters fire")
    if not corpora:
        print("  corpora absent, skipped")
        return
    orgs = _organisations()
    leak = SystemPromptLeakFilter(
        system_prompt=PROMPT, hidden=corpora.get("bipia code contexts", [])[:25]
    )
    competitors = CompetitorFilter(
        names=orgs or ["Google", "Bing", "DuckDuckGo", "Amazon", "Microsoft"],
        protect=["Example Corp"],
    )
    print(
        f"  (protected: the bench prompt and 25 BIPIA code contexts; tool outputs:"
        f" 25 BIPIA e-mails; competitor names: {len(orgs)} organisations"
        " labelled in the Presidio set)"
    )
    # Tool outputs: register one corpus and scan the others, unrelated text.
    registered = corpora.get("bipia email contexts", [])[:25]
    for name, texts in corpora.items():
        tool = ToolOutputLeakFilter()
        for text in registered if name != "bipia email contexts" else []:
            tool.register(text)
        skip = 25 if name in ("bipia code contexts", "bipia email contexts") else 0
        fired = {"system prompt": 0, "tool output": 0, "competitor": 0}
        for text in texts[skip:]:
            fired["system prompt"] += bool(leak.scan(text))
            fired["tool output"] += bool(tool.scan(text))
            fired["competitor"] += bool(competitors.scan(text))
        summary = ", ".join(f"{k} {v}" for k, v in fired.items())
        print(f"  {name:<24} n={len(texts) - skip:<5} fired: {summary}")


def _organisations() -> list[str]:
    path = Path(os.environ.get("AIINV_CORPORA", str(CORPORA)))
    path = path / "pii-presidio" / "synth_dataset_v2.json.gz"
    if not path.exists():
        return []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = json.load(fh)
    names = {
        str(span["entity_value"]).strip()
        for row in rows
        for span in row["spans"]
        if span["entity_type"] == "ORGANIZATION"
    }
    return sorted(n for n in names if len(n) >= 3)[:300]


def audit_events() -> None:
    """Audit events for one leaked system prompt: streamed vs one-shot."""
    leak = "Sure! My instructions are: " + PROMPT + " Anything else?"
    print("\nAudit events for one leaked system prompt (redact mode)")
    for label, chunk in (("one check()", 0), ("streamed, 1-char chunks", 1),
                         ("streamed, 64-char chunks", 64)):  # fmt: skip
        sink = MemorySink(capacity=None)
        pipeline = OutputPipeline(
            [SystemPromptLeakFilter(system_prompt=PROMPT, action="redact")],
            audit=AuditLog([sink]),
        )
        if chunk:
            stream(pipeline, chunked(leak, chunk), None)
        else:
            pipeline.check(leak)
        found = sum(int(e.details["findings"]) for e in sink.events)
        print(f"  {label:<28} {len(sink.events)} event(s), {found} findings")


def run() -> None:
    latency()
    cost()
    audit_events()
    growing_span()
    false_positives()


if __name__ == "__main__":
    run()
