"""Red team of the SecretsFilter speed work (issue #13), second look.

What the author's own speed attacks (test_secrets_speed_attacks.py) leave
out, each asserting the secure outcome:

* the judging budget in a stream: a window that runs out of its budget
  drops every finding of the filter and reports one ``secrets-scan-limit``
  finding where the budget ran out, which may lie in the held tail; the
  stream then released the text before it, the credential found there
  included (one chunk of a fast or replayed answer is one window);
* past the budget, the scan's other findings are dropped and the limit
  finding masked only ``MAX_MATCH`` characters where the budget ran out:
  ``OutputPipeline.check(...).text`` (what a log, a report, the test
  statistics' node names print) still showed the credential;
* the window of a rule that starts before its keyword (``back``): the first
  match from ``pos - back`` may be an earlier one that ends before the
  keyword, and the credential compared after it went unjudged
  (``"weak" == password or "Str0ng…" == db_password``);
* a quoted value on the line after its operator (new in this change) and a
  YAML block scalar were missed after a Windows line break: the canonical
  form folds a carriage return to a line feed (CRLF: two of them), and the
  rule wanted one line feed, maybe after a carriage return;
* the window memo kept a copy (~600 characters) of every window it saw:
  text whose candidates all differ grew memory by ~125 bytes per character
  (caches are bounded);
* the canonical form's ASCII fast path: it copied the rest of the text at
  every non-ASCII run, quadratic on text alternating ASCII and non-ASCII
  with one ``%`` in it (bounded cost);
* concurrency: the streaming hold's keyword tables were built lazily and
  published half built, so a stream on another thread held nothing back;
* a stream and a one-shot check of the same crafted text: a window past its
  budget blocked the stream where the whole answer stays within its budget;
  such a window now decides nothing until the answer's text gives it the
  budget (rescanned once it has doubled, blocked past the hold cap).
"""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest

from aiinvariants import OutputBlocked
from aiinvariants._internal import canonical as canonical_module
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard
from aiinvariants.filters import _secrets as secrets_module
from aiinvariants.filters._secret_sites import LIMIT_RULE, Exhausted, ScanState
from aiinvariants.testing import _stats as stats_module

# Both candidate searches: the RE2 pre-scan and the pure-Python one.
pytestmark = pytest.mark.usefixtures("secrets_engine")

PASSWORD = "Tr0ub4dor&3xQz!9"
GHP = "ghp_" + "Xq7Lm2Rt9Vb4Nc8Kd1Fz6Hs3Jw5Pe0Ya2UgT"
DECOY = "password=abcdefg1 "  # a regex match the judge dismisses (weak value)


def _streamed(
    pipeline: OutputPipeline, chunks: list[str], **options: int
) -> tuple[str, OutputBlocked | None]:
    """What a stream emitted before it ended or was blocked, and the block."""
    guard = StreamGuard(pipeline, **options)  # type: ignore[arg-type]
    out = ""
    try:
        for chunk in chunks:
            out += guard.feed(chunk)
        out += guard.close()
    except OutputBlocked as blocked:
        return out, blocked
    return out, None


def _exhausted_at(secrets: SecretsFilter, text: str) -> int | None:
    """Where a scan of ``text`` (ASCII: its own canonical form) runs out of
    its judging budget, or None."""
    state = ScanState(text)
    try:
        secrets._candidates(state)
    except Exhausted as stop:
        return stop.pos
    return None


def _limit_in_the_held_tail(pipeline: OutputPipeline) -> str:
    """A window (a credential, then decoys) whose scan runs out of budget at
    a decoy in the tail the stream holds back."""
    secrets = pipeline.get(SecretsFilter)
    for count in range(400, 1200):
        window = f"Here: {GHP}\n" + DECOY * count
        at = _exhausted_at(secrets, window)
        if at is not None and at >= pipeline.scan_and_hold(window)[1]:
            return window
    raise AssertionError("no window runs out of budget in its held tail")


# -- the budget in a stream -------------------------------------------------------


@pytest.mark.parametrize("action", ["block", "redact"])
@pytest.mark.parametrize("options", [{}, {"batch": 4096}], ids=["default", "batch"])
def test_a_window_past_its_budget_never_releases_a_credential(
    action: str, options: dict[str, int]
) -> None:
    pipeline = OutputPipeline([SecretsFilter(action=action)])  # type: ignore[arg-type]
    window = _limit_in_the_held_tail(pipeline)
    # more prose after it: the whole answer stays within its budget
    rest = "\nAll good, nothing more to say here. " * 4000
    one_shot = pipeline.check(window + rest)
    assert GHP not in one_shot.text
    out, blocked = _streamed(pipeline, [window, rest], **options)
    assert GHP not in out
    # The window past its budget decides nothing: once the answer's text
    # gives it the budget, the stream judges it as the one-shot check does.
    assert (blocked is not None) == one_shot.blocked
    if blocked is not None:
        assert LIMIT_RULE not in blocked.rule_ids
        assert "github-pat" in blocked.rule_ids
        assert GHP not in str(blocked)
    else:
        assert out == one_shot.text


def test_a_window_past_its_budget_blocks_at_abort_too() -> None:
    pipeline = OutputPipeline([SecretsFilter()])
    window = _limit_in_the_held_tail(pipeline)
    guard = StreamGuard(pipeline)
    try:
        guard.feed("Hello. ")
    except OutputBlocked:  # pragma: no cover - nothing to find yet
        pytest.fail("blocked on a greeting")
    guard._parts.append(window)  # arrived, never scanned: the consumer left
    guard._known += len(window)
    guard.abort()
    assert LIMIT_RULE in {f.rule_id for f in guard.findings}


def test_past_the_budget_the_masked_text_holds_no_credential() -> None:
    # the limit replaces every other finding of the scan: the masked text a
    # log, a report or a CLI prints must not show what they covered
    text = f"Here: {GHP}\n" + DECOY * 2000
    for action in ("block", "redact"):
        check = OutputPipeline([SecretsFilter(action=action)]).check(text)  # type: ignore[arg-type]
        assert check.blocked
        assert [f.rule_id for f in check.findings] == [LIMIT_RULE]
        assert GHP not in check.text
    assert GHP not in stats_module._masked(f"test_leak[{text}]")


# -- a rule that starts before its keyword ---------------------------------------

COMPARED_AFTER_A_WEAK_ONE = [
    f'if "abcdefgh" == password or "{PASSWORD}" == db_password:\n',
    f'assert "aaaaaaaa" != token and "{PASSWORD}" == api_secret\n',
    f'ok = "x1234567"=="x1234567" or "{PASSWORD}"==password\n',
]


@pytest.mark.parametrize("text", COMPARED_AFTER_A_WEAK_ONE)
def test_a_credential_compared_after_a_weak_literal_is_found(text: str) -> None:
    findings = SecretsFilter().scan(text)
    start = text.index(PASSWORD)
    assert any(
        f.rule_id == "credential-comparison" and f.start <= start < f.end
        for f in findings
    )
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    expected = pipeline.check(text).text
    assert PASSWORD not in expected
    for cut in range(1, len(text), 7):
        out, blocked = _streamed(pipeline, [text[:cut], text[cut:]], batch=1)
        assert blocked is None
        assert out == expected, cut


def test_a_password_flag_after_a_weak_one_is_found() -> None:
    text = f"mysql -u root -pabcdefgh1 && mysql -u root -p{PASSWORD}x\n"
    start = text.index(PASSWORD)
    assert any(f.start <= start < f.end for f in SecretsFilter().scan(text))


# -- a value on the next line, with Windows line endings -------------------------

NEXT_LINE_CRLF = [
    f"password =\r\n\t'{PASSWORD}'\r\n",
    f'password:\r\n  "{PASSWORD}"\r\n',
    f"password: |\r\n  {PASSWORD}\r\n",
    f"- name: API_TOKEN\r\n  value: {PASSWORD}\r\n",
    f'password:\n\n  "{PASSWORD}"\n',
]


@pytest.mark.parametrize("text", NEXT_LINE_CRLF)
def test_a_value_after_a_crlf_line_break_is_found(text: str) -> None:
    # the canonical form folds "\r" to "\n": CRLF is two line feeds there
    start = text.index(PASSWORD)
    findings = SecretsFilter().scan(text)
    assert any(f.start <= start < f.end for f in findings)
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    expected = pipeline.check(text).text
    assert PASSWORD not in expected
    for cut in range(1, len(text), 3):
        out, blocked = _streamed(pipeline, [text[:cut], text[cut:]], batch=1)
        assert blocked is None
        assert out == expected, cut


# -- the window memo stays bounded ------------------------------------------------


def test_the_window_memo_does_not_keep_a_copy_of_every_window() -> None:
    # a token keyword every 8 characters in one long run, each followed by
    # different characters: every window is new, none matches (no budget)
    f = SecretsFilter()
    f._use_native = False  # the RE2 pre-scan has no candidates here
    text = "".join(
        "ghp_" + format(i * 2654435761 % (1 << 32), "08x")[:4].upper()
        for i in range(25_000)
    )
    f.scan("warm up")
    tracemalloc.start()
    try:
        assert f.scan(text) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # ~600 characters kept per candidate before: 125 bytes per character
    assert peak < 60 * len(text)


# -- the canonical form's ASCII fast path ----------------------------------------


def test_the_next_non_ascii_character_is_found_without_copying_the_rest() -> None:
    # the search from a position right before a non-ASCII character costs the
    # same however long the text after it is (it ran once per non-ASCII run:
    # a copy of the rest each time made "%" + "éx" * n quadratic)
    find = canonical_module._next_non_ascii

    def cost(text: str) -> float:
        best = float("inf")
        for _ in range(3):
            began = time.perf_counter()
            for _ in range(200):
                assert find(text, 1) == 1
            best = min(best, time.perf_counter() - began)
        return best

    short = "xé" + "a" * 1000
    long = "xé" + "a" * 4_000_000
    assert cost(long) < 20 * cost(short) + 0.005


def test_canonical_of_alternating_text_is_linear() -> None:
    text = "%" + "éx" * 20_000
    canon = canonical_module.canonical(text)
    assert canon.text == canonical_module._full(text).text


# -- a stream and a one-shot check agree -----------------------------------------


def test_a_stream_and_a_one_shot_check_agree_on_a_dense_stretch() -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    window = _limit_in_the_held_tail(pipeline)
    rest = "\nAll good, nothing more to say here. " * 4000
    one_shot = pipeline.check(window + rest)
    out, blocked = _streamed(pipeline, [window, rest])
    assert (blocked is not None) == one_shot.blocked
    assert blocked is not None or out == one_shot.text


# -- a value whose encoded character ends it once decoded ------------------------

DECODED_TERMINATORS = [
    "https://x.example/login?user=bob&password=S3cr%3Bt!Pass99",
    'curl -d "password=Tr0ub%20dor!Qx9z" https://x.example/login',
    'password = "Tr0ub&#9;dor!Qx9z"',
]


@pytest.mark.parametrize("text", DECODED_TERMINATORS)
def test_a_value_with_an_encoded_separator_is_found(text: str) -> None:
    assert SecretsFilter().scan(text)


# -- concurrency: a filter shared by streams on several threads ------------------


def test_a_hold_computed_while_another_thread_builds_it_holds_the_keyword(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the first hold() builds the keyword tables lazily; a second stream on
    # another thread saw them half built (widths set, tries not yet) and
    # held nothing back: "password = Tr0ub" went out, its finding then
    # started before the decided point and was dropped
    text = "Sure, here it is: password = Tr0ub"
    reference = SecretsFilter().hold(canonical_module.canonical(text))
    assert reference < len(text)
    shared = SecretsFilter()
    real = secrets_module.trie_pattern
    building = threading.Event()
    other_done = threading.Event()
    owner: list[int] = []  # the thread that builds first

    def slow_trie(words: list[str]) -> str:
        if not owner:
            owner.append(threading.get_ident())
        if owner[0] == threading.get_ident() and not building.is_set():
            building.set()
            other_done.wait(timeout=10)
        return real(words)

    monkeypatch.setattr(secrets_module, "trie_pattern", slow_trie)
    canon = canonical_module.canonical(text)
    results: dict[str, int] = {}

    def builder() -> None:
        results["builder"] = shared.hold(canon)

    thread = threading.Thread(target=builder)
    thread.start()
    try:
        assert building.wait(timeout=10)
        results["other"] = shared.hold(canon)
    finally:
        other_done.set()
        thread.join(timeout=10)
    assert results == {"builder": reference, "other": reference}
