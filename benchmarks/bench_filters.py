"""Output filters (issue #6): throughput, streaming cost, precision/recall.

Everything runs in one process on the same deterministic texts. Corpora
from ``../shared/corpora`` are read when present (never copied here); each
is reported on its own. llm-guard's ``Secrets`` scanner is measured on the
same texts when an interpreter that has it is found: ``AIINV_LLMGUARD_PYTHON``
or ``/tmp/llmguard/bin/python`` (``python3 -m venv /tmp/llmguard &&
/tmp/llmguard/bin/pip install llm-guard``).
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import os
import random
import statistics
import string
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from aiinvariants import Policy
from aiinvariants.filters import (
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)

ROOT = Path(__file__).resolve().parents[1]
# ../shared/corpora next to the checkout (or next to its worktree folder)
CORPORA = next(
    (
        base / "shared" / "corpora"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "corpora").is_dir()
    ),
    ROOT.parent / "shared" / "corpora",
)
SIZES = {"1 KB": 1_000, "10 KB": 10_000, "100 KB": 100_000, "1 MB": 1_000_000}
PROMPT = (
    "You are SupportBot for Example Corp. Answer questions about orders and "
    "invoices. Never reveal internal pricing rules. Always escalate refunds "
    "above 500 EUR to a human agent and never mention discount codes."
)
PROSE = [
    "The",
    "team",
    "reviewed",
    "the",
    "quarterly",
    "report",
    "and",
    "agreed",
    "to",
    "ship",
    "the",
    "new",
    "onboarding",
    "flow",
    "next",
    "week.",
    "Customers",
    "asked",
    "for",
    "clearer",
    "invoices,",
    "faster",
    "support",
    "answers",
    "and",
    "an",
    "export",
    "to",
    "spreadsheets.",
]
CODE = [
    "def handle(request):",
    '    token = request.headers.get("Authorization", "")',
    "    for item in order.items:",
    "        total += item.price * item.quantity",
    'config = {"timeout": 30, "retries": 3, "region": "eu-central-1"}',
    'return JSONResponse({"status": "ok", "count": len(rows)})',
    "if user.is_authenticated and not user.is_staff:",
    "    logger.info('processed %d rows in %.2fs', n, elapsed)",
]


def make_text(size: int, seed: int = 6) -> str:
    """Prose and code with a credential, an e-mail and a phone every ~20 KB."""
    rnd = random.Random(seed)
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    parts: list[str] = []
    total = 0
    while total < size:
        if rnd.random() < 0.5:
            part = " ".join(rnd.choice(PROSE) for _ in range(24)) + "\n"
        else:
            part = "\n".join(rnd.sample(CODE, 3)) + "\n"
        if rnd.random() < 0.01:
            part += (
                "key: ghp_" + "".join(rnd.choice(alnum) for _ in range(36)) + "\n"
                "write to ops@example.com or call +41 44 668 18 00\n"
            )
        parts.append(part)
        total += len(part)
    return "".join(parts)[:size]


def default_pipeline(*, action: str | None = None) -> OutputPipeline:
    """``OutputPipeline.from_policy(Policy())`` with a system prompt registered."""
    data = {}
    if action:
        data = {
            "outputs": {
                key: {"action": action}
                for key in ("secrets", "system_prompt", "tool_outputs", "pii")
            }
        }
    pipeline = OutputPipeline.from_policy(Policy.model_validate(data), environ={})
    pipeline.get(SystemPromptLeakFilter).protect(PROMPT)
    return pipeline


def best_of(fn: Callable[[], object], *, budget: float = 0.6, least: int = 3) -> float:
    """Median seconds per call over repeated runs (at least ``least``)."""
    times: list[float] = []
    spent = 0.0
    while len(times) < least or spent < budget:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
        if len(times) >= 200:
            break
    return statistics.median(times)


def chunked(text: str, size: int) -> list[str]:
    """The stream as a model client delivers it: chunks made beforehand."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream(pipeline: OutputPipeline, chunks: list[str], batch: int | None) -> str:
    guard = StreamGuard(pipeline, batch=batch)
    feed = guard.feed
    out = [feed(chunk) for chunk in chunks]
    out.append(guard.close())
    return "".join(out)


def side_by_side(
    baseline: Callable[[], object],
    other: Callable[[], object],
    *,
    rounds: int = 15,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float, float]:
    """Median seconds of each and the median of per-round ratios.

    The two run alternately, so a noisy moment on a shared machine lands on
    both rather than on one.
    """
    base: list[float] = []
    cost: list[float] = []
    for _ in range(rounds):
        for fn, into in ((baseline, base), (other, cost)):
            start = clock()
            fn()
            into.append(clock() - start)
    ratios = [c / b for b, c in zip(base, cost, strict=True)]
    return statistics.median(base), statistics.median(cost), statistics.median(ratios)


# -- corpora -----------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, object]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return [json.loads(line) for line in fh if line.strip()]


def _prf(cases: Iterable[tuple[bool, bool]]) -> tuple[int, int, int, int]:
    tp = fp = fn = tn = 0
    for positive, flagged in cases:
        if positive and flagged:
            tp += 1
        elif positive:
            fn += 1
        elif flagged:
            fp += 1
        else:
            tn += 1
    return tp, fp, fn, tn


def _line(name: str, tp: int, fp: int, fn: int, tn: int, note: str = "") -> None:
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    print(
        f"  {name:<34} n={tp + fp + fn + tn:<5} precision={precision:6.1%} "
        f"recall={recall:6.1%}  (TP {tp}, FP {fp}, FN {fn}, TN {tn}) {note}"
    )


def _flagged(
    f: SecretsFilter, rows: list[dict[str, object]], key: str = "text"
) -> list[tuple[bool, bool]]:
    return [(r["label"] in ("TP", "FLAG"), bool(f.scan(str(r[key])))) for r in rows]


def _fresh_generator() -> Any:
    path = ROOT / "tests" / "fixtures" / "make_secrets_corpus.py"
    spec = importlib.util.spec_from_file_location("make_secrets_corpus", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _skeleton(text: str) -> str:
    return "".join(c for c in text if not c.isspace() and c not in ";,'\"`@")


# How an answer carries a snippet of each file type of the detect-secrets
# corpus: a fenced code block whose info string names the language (the
# word writers and highlighters use for that extension). detect-secrets
# labels some lines by the file type it assumes (the same line is a value
# in a config file and a variable in code); the fence says the same thing.
_DS_FENCE = {
    "c": "c",
    "cls": "apex",
    "conf": "ini",
    "cs": "csharp",
    "go": "go",
    "java": "java",
    "js": "javascript",
    "m": "objectivec",
    "py": "python",
    "pyi": "python",
    "swift": "swift",
    "tf": "hcl",
}


def fenced_row(row: dict[str, object]) -> dict[str, object]:
    """The row as an answer would carry it: in a fence naming its file
    type's language (a row without a file type stays a bare line)."""
    ext = row.get("file_extension")
    if not ext:
        return row
    lang = _DS_FENCE.get(str(ext), str(ext))
    return {**row, "text": f"```{lang}\n{row['text']}\n```"}


def _ds_quality(f: SecretsFilter, rows: list[dict[str, object]]) -> None:
    """detect-secrets rows, fenced (as in an answer) and as bare lines; every
    row counts in both."""
    fenced = [fenced_row(r) for r in rows]
    _line("detect-secrets plugin tests (Apache)", *_prf(_flagged(f, fenced)))
    typed_rows = sum(1 for r in rows if r.get("file_extension"))
    print(
        f"  {'':<34} the {typed_rows} rows with a file type fenced with its "
        "language (```python, ```ini…)"
    )
    _line("  the same rows as bare lines", *_prf(_flagged(f, rows)))
    labels: dict[str, set[object]] = {}
    for r in rows:
        labels.setdefault(_skeleton(str(r["text"])), set()).add(r["label"])
    typed = [r for r in rows if len(labels[_skeleton(str(r["text"]))]) > 1]
    plain = [r for r in rows if len(labels[_skeleton(str(r["text"]))]) == 1]
    _line(
        "  bare, without file-type-labelled",
        *_prf(_flagged(f, plain)),
        f"({len(typed)} rows whose label depends on the file type left out)",
    )


# Token rules whose keys carry no checksum (a verified key is never
# dismissed as part of a blob, so it measures nothing here).
_PLANT_RULES = ("aws-access-key-id", "gcp-api-key", "stripe-secret-key",
                "slack-bot-token", "gitlab-pat",
                "huggingface-token", "sendgrid-api-key")  # fmt: skip


def _planted_keys(f: SecretsFilter, gen: Any, seed: int, n: int = 400) -> None:
    """Keys from documented formats planted at random offsets of base64
    images / data URIs (should stay unreported: part of the blob) and as a
    segment of a long URL path (should be reported)."""
    rnd = random.Random(seed)
    gen.R.seed(seed)
    makers = [gen.SAMPLES[r] for r in _PLANT_RULES if r in gen.SAMPLES]
    wraps = (
        "data:image/png;base64,{}",
        '<img src="data:image/jpeg;base64,{}">',
        "![chart](data:image/png;base64,{})",
        "url(data:image/gif;base64,{})",
    )
    alphabet = string.ascii_letters + string.digits
    in_images = in_paths = 0
    for i in range(n):
        key = makers[i % len(makers)]()
        blob = base64.b64encode(rnd.randbytes(rnd.randint(200, 900))).decode()
        at = rnd.randint(8, len(blob) - 8)
        in_images += bool(f.scan(wraps[i % 4].format(blob[:at] + key + blob[at:])))
        segs = ["".join(rnd.choices(alphabet, k=rnd.randint(2, 30))) for _ in range(8)]
        cut = rnd.randint(0, 8)
        url = "/".join(["https://api.example.com", *segs[:cut], key, *segs[cut:]])
        in_paths += bool(f.scan(f"Call {url} to rotate it."))
    print(
        f"  keys planted in base64 images/data URIs reported: {in_images}/{n} "
        f"({in_images / n:.2%}); keys as a URL path segment found: "
        f"{in_paths}/{n} ({in_paths / n:.2%})"
    )


def secrets_quality() -> None:
    f = SecretsFilter()
    print("\nSecretsFilter precision / recall, per corpus (a case counts as")
    print("flagged when any rule fires on its text)")
    own = ROOT / "tests" / "fixtures" / "secrets_corpus.jsonl"
    _line("aiinvariants (in repo)", *_prf(_flagged(f, _rows(own))))
    fresh = _fresh_generator().fresh_cases(int(time.time()) % 100_000, per_rule=20)
    tp, fp, fn, tn = _prf(_flagged(f, fresh))
    _line("fresh documented formats", tp, fp, fn, tn)
    print(
        f"  {'':<34} recall {tp / (tp + fn):.2%}, false positives on hard "
        f"negatives {fp / (fp + tn):.2%} (goal >= 99% / <= 1%)"
    )
    _planted_keys(f, _fresh_generator(), int(time.time()) % 100_000)
    gl = CORPORA / "secrets-gitleaks" / "cases.jsonl.gz"
    if gl.exists():
        rows = _rows(gl)
        _line(
            "gitleaks rule tests (MIT)",
            *_prf(_flagged(f, rows)),
            "FP rows are only 'not this rule'",
        )
        lit = [r for r in rows if r.get("origin") == "literal"]
        _line("  literal cases only", *_prf(_flagged(f, lit)))
        paths = [r for r in rows if r.get("path")]
        print(
            f"  not evaluable as text: {len(paths)} path-aware cases (file names "
            "such as *.p12 or kubeconfig decide the label, not the text)"
        )
    else:
        print("  gitleaks corpus: absent, skipped")
    ds = CORPORA / "secrets-detect-secrets" / "cases.jsonl"
    if ds.exists():
        _ds_quality(f, _rows(ds))
    else:
        print("  detect-secrets corpus: absent, skipped")
    lg = CORPORA / "llm-guard-tests" / "cases.jsonl"
    if lg.exists():
        rows = [r for r in _rows(lg) if str(r.get("scanner", "")).endswith("secrets")]
        _line("llm-guard secrets tests (MIT)", *_prf(_flagged(f, rows, "prompt")))


def pii_quality() -> None:
    path = CORPORA / "pii-presidio" / "synth_dataset_v2.json.gz"
    if not path.exists():
        print("\nPIIFilter: presidio corpus absent, skipped")
        return
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    kinds = {
        "EMAIL_ADDRESS": "pii-email",
        "PHONE_NUMBER": "pii-phone",
        "CREDIT_CARD": "pii-payment-card",
        "IBAN_CODE": "pii-iban",
        "US_SSN": "pii-us-ssn",
    }
    f = PIIFilter()
    found = {k: [0, 0] for k in kinds}
    extra = 0
    total_findings = 0
    for row in data:
        findings = f.scan(row["full_text"])
        total_findings += len(findings)
        spans = [
            (s["start_position"], s["end_position"], s["entity_type"])
            for s in row["spans"]
        ]
        for start, end, kind in spans:
            if kind in found:
                found[kind][1] += 1
                if any(x.start < end and start < x.end for x in findings):
                    found[kind][0] += 1
        for x in findings:
            if not any(x.start < e and s < x.end and k in kinds for s, e, k in spans):
                extra += 1
    print("\nPIIFilter on presidio-research synth_dataset_v2 (MIT), span overlap")
    for kind, (hit, total) in found.items():
        print(f"  recall {kind:<14} {hit}/{total} = {hit / max(total, 1):.1%}")
    precision = 1 - extra / max(total_findings, 1)
    print(
        f"  precision (findings overlapping a labelled span of these kinds): "
        f"{total_findings - extra}/{total_findings} = {precision:.1%}"
    )
    print("  not evaluated: PERSON, ADDRESS, GPE, ORG, DATE, IP… (not I8 kinds);")
    print("  Presidio's synthetic cards/IBANs are not all checksum-valid by design")


# -- llm-guard ---------------------------------------------------------------

_LLMGUARD = r"""
import json, sys, time, statistics, logging
logging.disable(logging.CRITICAL)
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(50))
from llm_guard.input_scanners import Secrets
scanner = Secrets(redact_mode="all")
out = {}
for name, path in json.loads(sys.argv[1]).items():
    text = open(path, encoding="utf-8").read()
    times = []
    spent = 0.0
    while len(times) < 3 or (spent < 2.0 and len(times) < 20):
        t = time.perf_counter(); scanner.scan(text); d = time.perf_counter() - t
        times.append(d); spent += d
    out[name] = statistics.median(times)
print(json.dumps(out))
"""


def llm_guard_times(texts: dict[str, str]) -> dict[str, float] | None:
    python = os.environ.get("AIINV_LLMGUARD_PYTHON") or "/tmp/llmguard/bin/python"  # noqa: S108
    if not Path(python).exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, text in texts.items():
            path = Path(tmp) / f"{len(text)}.txt"
            path.write_text(text, encoding="utf-8")
            paths[name] = str(path)
        try:
            done = subprocess.run(
                [python, "-c", _LLMGUARD, json.dumps(paths)],
                capture_output=True,
                text=True,
                timeout=900,
                check=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"  llm-guard run failed: {type(exc).__name__}")
            return None
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def alternating(text: str) -> Callable[[], str]:
    """Two equal copies of ``text``, handed out in turn: a new answer is a new
    string, so work cached for the last text (canonical form, decoded runs)
    is never reused from the previous call, as it would be for one string."""
    copies = ["".join([text[:1], text[1:]]) for _ in range(2)]
    state = [0]

    def next_copy() -> str:
        state[0] ^= 1
        return copies[state[0]]

    return next_copy


def floor(text: str) -> None:
    """What one pass of a regex engine over all the rules' keywords costs.

    The pattern is the keyword alternation followed by two characters that
    never occur, so the engine scans the whole text and reports nothing: the
    engine's own speed, without Python work per match.
    """
    import re

    from aiinvariants.filters._holds import trie_pattern

    secrets = SecretsFilter()
    keywords = sorted({k for rule in secrets.rules for k in rule.keywords})
    lowered = text.lower()
    never = f"(?:{trie_pattern(keywords)})\x00\x01"
    cases: dict[str, Callable[[], object]] = {
        f"re: one pass, alternation of the {len(keywords)} keywords": partial(
            re.compile(never).search, lowered
        )
    }
    try:
        import re2  # type: ignore[import-not-found]
    except ImportError:
        print("  re2 (google-re2) not installed: its floor is not measured")
    else:
        # the rules themselves use lookarounds, which re2 does not have
        cases["re2: the same pass"] = partial(re2.compile(never).search, lowered)
    for label, fn in cases.items():
        _, spent, ratio = side_by_side(text.lower, fn, rounds=7, clock=time.thread_time)
        print(f"  {label:<48} {spent * 1e3:7.2f} ms = {ratio:5.1f}x str.lower()")


def pure_floor(text: str) -> None:
    """What the pure-Python candidate search is made of, each part against
    str.lower(): why SecretsFilter cannot reach 10x without a native engine.

    Each context keyword costs one C-speed literal pass (``re`` finds a
    literal prefix at about str.lower() speed; the stdlib has no multi-literal
    search, and one ``re`` alternation is the 120x above); the shapes then
    run at every occurrence of their keyword; the token rules need the runs
    of 16 token characters (one translate and a find loop).
    """
    import re

    from aiinvariants.filters._base import canonical_of
    from aiinvariants.filters._secret_sites import ScanState

    secrets = SecretsFilter()
    secrets._use_native = False
    canon = canonical_of(text)
    lowered = canon.text
    copy = alternating(text)  # a new string per call: nothing cached
    literals = [re.compile(re.escape(k)) for k in secrets._context]
    shaped = [
        re.compile(re.escape(k)) if shape is None else shape
        for k, shape, _ in secrets._context_plan
    ]
    probe = SecretsFilter()
    probe._use_native = False
    probe._try = lambda *_: None  # type: ignore[method-assign]

    def passes(patterns: list[re.Pattern[str]]) -> Callable[[], object]:
        return lambda: [sum(1 for _ in p.finditer(lowered)) for p in patterns]

    parts: dict[str, Callable[[], object]] = {
        "canonical form (ASCII text)": lambda: canonical_of(copy()),
        f"{len(literals)} literal passes, one per context keyword": passes(literals),
        "the same passes with their shapes (as run)": passes(shaped),
        "token runs of 16 (translate + find), no judging": lambda: probe._scan_tokens(
            ScanState(canon.cased, None, memo=True)
        ),
        "whole candidate search, no judging": lambda: probe._candidates(
            ScanState(canon.cased, None, memo=True), lowered
        ),
    }
    for label, fn in parts.items():
        _, spent, ratio = side_by_side(text.lower, fn, rounds=5, clock=time.thread_time)
        print(f"  {label:<48} {spent * 1e3:7.2f} ms = {ratio:5.1f}x str.lower()")


def prompt_sizes(text: str) -> None:
    """The system-prompt filter over 1 MB as the protected prompt grows,
    side by side: one ``str.find`` pass per probe (20 characters every 10 of
    the prompt; the only search before #13's block pass, and still the one
    below 40 probes) and one pass over aligned blocks for all probes."""
    from aiinvariants.filters import _leaks

    rnd = random.Random(2)
    copy = alternating(text)
    print("\nSystemPromptLeakFilter over 1 MB by prompt size (CPU ms, side by side)")
    for size in (200, 2000, 8000):
        words = (rnd.choice(PROSE) + str(rnd.randint(0, 99)) for _ in range(size // 8))
        f = SystemPromptLeakFilter(system_prompt=" ".join(words)[:size])
        shipped = _leaks._BLOCKS_FROM

        def per_probe(f: SystemPromptLeakFilter = f, shipped: int = shipped) -> None:
            _leaks._BLOCKS_FROM = 10**9
            try:
                f.scan(copy())
            finally:
                _leaks._BLOCKS_FROM = shipped

        def blocks(f: SystemPromptLeakFilter = f, shipped: int = shipped) -> None:
            _leaks._BLOCKS_FROM = 1
            try:
                f.scan(copy())
            finally:
                _leaks._BLOCKS_FROM = shipped

        finds, block, _ = side_by_side(
            per_probe, blocks, rounds=5, clock=time.thread_time
        )
        print(
            f"  prompt {size:>5} chars, {len(f._probes._probes):>4} probes: one find "
            f"per probe {finds * 1e3:6.1f} ms, block pass {block * 1e3:6.1f} ms"
            + ("  (shipped: finds)" if len(f._probes._probes) < shipped else "")
        )


def _crafted_texts(size: int = 180_000) -> dict[str, str]:
    """Adversarial inputs: a keyword repeated, base64-ish runs, many "=", and
    a repetition that varies at every occurrence (the window memo cannot
    help there; the judging budget bounds it)."""
    rnd = random.Random(1)
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    units = {
        "password= repeated": "password=",
        "password = x repeated": "password = x ",
        "token: repeated": "token: ",
        "api_key=weak repeated": "api_key=abcdefgh1 ",
        "Authorization: repeated": "Authorization: ",
        "eyJ repeated": "eyJ",
        "KEY repeated": "KEY ",
        "many =": "=",
        # splitters the canonical form decodes or folds, back to back: the
        # written-back pass once walked each one's run (quadratic)
        "fullwidth @ repeated": "\uff20",
        "%3B repeated": "%3B",
    }
    out = {
        name: (unit * (size // len(unit) + 1))[:size] for name, unit in units.items()
    }
    out["base64 run"] = "".join(rnd.choice(b64) for _ in range(size))
    out["password=<varied> repeated"] = "".join(
        f"password=pw{i:06d}x{i % 7} " for i in range(size // 20)
    )[:size]
    return out


def crafted() -> None:
    """Crafted inputs, CPU time: MB/s per engine, and what the filter says."""
    from aiinvariants.filters._secret_sites import LIMIT_RULE

    print("\nSecretsFilter on crafted 180 KB inputs (MB/s; 'blocked': past the")
    print("  judging budget, the text is one secrets-scan-limit finding)")
    engines = [
        (name, name)
        for name in ("pure", "re2", "hyperscan")
        if name == "pure" or SecretsFilter()._native_for(name) is not None
    ]
    header = "".join(f"{name:>10}" for name, _ in engines)
    print(f"  {'input':<30}{header}  outcome")
    for label, text in _crafted_texts().items():
        rates = []
        outcome = ""
        for _, engine in engines:
            f = SecretsFilter()
            f._engine = engine
            spent = best_of(lambda f=f, t=text: f.scan(t), budget=0.3, least=2)
            rates.append(f"{len(text) / spent / 1e6:10.1f}")
            found = f.scan(text)
            outcome = (
                "blocked"
                if any(x.rule_id == LIMIT_RULE for x in found)
                else f"{len(found)} findings"
            )
        print(f"  {label:<30}{''.join(rates)}  {outcome}")
    print("  (before this work: password= repeated scanned at ~0.5 MB/s)")


def engine_parts(text: str) -> None:
    """Each native engine's SecretsFilter over 1 MB, part by part against
    str.lower() (CPU time): the canonical form, the engine's pass, the
    candidate tests in its windows, then judging (the rest of the scan)."""
    from aiinvariants.filters._base import ascii_lower, canonical_of

    print("  a native scan, part by part (same text)")
    copy = alternating(text)
    for engine in ("re2", "hyperscan"):
        f = SecretsFilter()
        f._engine = engine
        native = f._native_for(engine)
        if native is None:
            continue
        prescan, candidates = native
        windows = list(prescan.windows(text) or ())
        parts: dict[str, Callable[[], object]] = {
            "canonical form": lambda: canonical_of(copy()),
            f"{engine} pass (windows)": lambda p=prescan: list(p.windows(text) or ()),
            "candidate tests in the windows": lambda c=candidates, w=windows: c.pairs(
                text, w, ascii_lower
            ),
            "the whole scan": lambda f=f: f.scan(copy()),
        }
        for label, fn in parts.items():
            _, spent, ratio = side_by_side(
                text.lower, fn, rounds=5, clock=time.thread_time
            )
            print(f"    {label:<46} {spent * 1e3:7.2f} ms = {ratio:5.1f}x str.lower()")


def run() -> None:
    texts = {name: make_text(size) for name, size in SIZES.items()}
    secrets = SecretsFilter()
    pipeline = default_pipeline()
    print("\nOutput filters: throughput on prose+code with a few secrets (MB/s)")
    print("  (each call gets a new string, as each answer is)")
    print(f"  {'size':<8} {'SecretsFilter':>14} {'default pipeline':>17}")
    ours: dict[str, float] = {}
    for name, text in texts.items():
        copy = alternating(text)
        t_sec = best_of(lambda c=copy: secrets.scan(c()))
        t_all = best_of(lambda c=copy: pipeline.check(c()))
        ours[name] = t_sec
        mb = len(text) / 1e6
        print(f"  {name:<8} {mb / t_sec:>14.1f} {mb / t_all:>17.1f}")

    prompt_sizes(texts["1 MB"])

    from .bench_streaming import run as streaming

    streaming()

    print("\nAgainst the floor: 1 MB, side by side with one str.lower() pass")
    print("  (CPU time of this thread: on a shared machine, wall time inflates a")
    print("  20 ms job by preemption far more than a 0.3 ms one)")
    one_mb = texts["1 MB"]
    copy = alternating(one_mb)
    engines = []
    for engine in ("pure", "re2", "hyperscan"):
        f = SecretsFilter()
        f._engine = engine
        p = default_pipeline()
        p.get(SecretsFilter)._engine = engine
        if engine != "pure" and f._native_for(engine) is None:
            print(f"  {engine} not installed: its pre-scan is not measured")
            continue
        f.scan(one_mb)  # compile the engine's database outside the timing
        p.check(one_mb)
        engines.append((engine, f, p))
    for engine, f, _ in engines:
        lower, sec, ratio = side_by_side(
            one_mb.lower, lambda f=f: f.scan(copy()), clock=time.thread_time
        )
        print(
            f"  SecretsFilter, {engine:<10}{sec * 1e3:7.2f} ms = {ratio:5.1f}x "
            f"str.lower() ({lower * 1e3:.2f} ms); {1 / sec:6.1f} MB/s  "
            "(goal <= 10x; before #13's one-shot work: 92.6x pure, 25.8x re2)"
        )
    for engine, _, p in engines:
        lower, whole, ratio = side_by_side(
            one_mb.lower,
            lambda p=p: p.check(copy()),
            rounds=7,
            clock=time.thread_time,
        )
        print(
            f"  default pipeline, {engine:<10}{whole * 1e3:7.2f} ms = {ratio:5.1f}x "
            f"str.lower(); {1 / whole:6.1f} MB/s  (issue: ~28 MB/s; before: "
            "168x = 20.9 pure, 101x = 35.0 re2)"
        )
    engine_parts(one_mb)
    print("  the floor, same text: a single pass that only finds the keywords")
    floor(one_mb)
    print("  the pure-Python candidate search, part by part (same text)")
    pure_floor(one_mb)

    lg = llm_guard_times(texts)
    if lg is None:
        print("\nllm-guard Secrets: no interpreter with llm-guard found, skipped")
    else:
        print("\nllm-guard Secrets scanner (same texts, separate interpreter)")
        for name in texts:
            if name in lg:
                print(
                    f"  {name:<8} llm-guard {lg[name] * 1e3:9.1f} ms   SecretsFilter "
                    f"{ours[name] * 1e3:7.2f} ms   ratio {lg[name] / ours[name]:7.1f}x"
                )
    crafted()
    secrets_quality()
    pii_quality()


if __name__ == "__main__":
    run()
