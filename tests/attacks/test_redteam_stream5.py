"""Red team of the stream's judging budget and release schedule (#13).

The secrets filter judges at most ``budget_for(n)`` candidate sites in a
text of ``n`` characters. A stream judges *windows* of the answer, shorter
than it, and the change under attack let a window that ran out of its own
budget wait (scanned again once doubled) "so the text that follows gives it
the budget the one-shot check has". Nothing follows the last window: a long
clean answer that *ends* with a dense stretch of candidates (a credential,
then ``password=`` decoys the judge dismisses: a config dump, a table of
placeholder settings) has a whole-answer budget that covers every candidate,
so the one-shot check redacts the credential and lets the rest through,
while the stream's last window, judged with the budget of its own length,
ran out and blocked the answer with ``secrets-scan-limit``. Fed fast in
small chunks (a cached or replayed answer, the default ``scan_share``), the
window is the last ``MAX_WAIT`` piece; fed in two pieces, it is the second;
past ``HOLD_CAP`` undecided characters the same happened mid-stream. An
attacker who can make the model end its answer that way turns any answer
into a refusal the one-shot check does not make (the output of a stream
must equal the one-shot check's for every chunking), and ``abort()``
recorded a limit the answer never reached.

A scan also moved its decided point before computing what may fail
after it (the next left context): a scan that raised there (a
``MemoryError`` on a large window, an interrupt) lost the findings it had
accepted while the decided point had moved, and the next feed released
the credential unmasked (fault injected by a test double).

Secure outcome asserted: the stream's output is exactly
``OutputPipeline.check(answer).text``, the credential is never emitted, no
``secrets-scan-limit`` is raised or recorded, and in block mode the stream
raises ``OutputBlocked`` (code ``output_blocked``) on the credential's own
rule before any of it is emitted.
"""

from __future__ import annotations

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard
from aiinvariants.filters._secret_sites import LIMIT_RULE, Exhausted, ScanState
from aiinvariants.filters._streaming import HOLD_CAP

pytestmark = pytest.mark.usefixtures("secrets_engine")

GHP = "ghp_" + "Xq7Lm2Rt9Vb4Nc8Kd1Fz6Hs3Jw5Pe0Ya2UgT"
DECOY = "password=abcdefg1 "  # a regex match the judge dismisses (weak value)
PROSE = "\nAll good, nothing more to say here. "


def _exhausts(secrets: SecretsFilter, text: str) -> bool:
    try:
        secrets._candidates(ScanState(text))
    except Exhausted:
        return True
    return False


def _dense(secrets: SecretsFilter, least: int = 0) -> str:
    """A credential, then the fewest decoys (at least ``least``) that
    exhaust a scan of that stretch alone."""
    for count in range(max(300, least), 20_000, 20):
        text = f"Here: {GHP}\n" + DECOY * count
        if _exhausts(secrets, text):
            return text
    raise AssertionError("no stretch exhausts the budget")


def _stream(
    pipeline: OutputPipeline, chunks: list[str], **options: float
) -> tuple[str, OutputBlocked | None]:
    guard = StreamGuard(pipeline, **options)  # type: ignore[arg-type]
    out: list[str] = []
    try:
        for chunk in chunks:
            out.append(guard.feed(chunk))
        out.append(guard.close())
    except OutputBlocked as exc:
        return "".join(out), exc
    return "".join(out), None


def _pieces(text: str, size: int) -> list[str]:
    return [text[at : at + size] for at in range(0, len(text), size)]


@pytest.mark.parametrize("share", [1.0, 0.25])
def test_a_dense_stretch_ending_the_answer_in_one_piece_agrees_with_the_check(
    share: float,
) -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    dense = _dense(pipeline.get(SecretsFilter))
    prose = PROSE * 3000
    expected = pipeline.check(prose + dense)
    assert not expected.blocked  # the whole answer stays within its budget
    out, blocked = _stream(pipeline, [prose, dense], scan_share=share)
    assert blocked is None, blocked.rule_ids
    assert out == expected.text
    assert GHP not in out


@pytest.mark.parametrize("decoys", [1500, 3500])  # 27K, then 63K > HOLD_CAP
def test_a_fast_stream_ending_dense_agrees_with_the_check(decoys: int) -> None:
    """Fed in 16-character chunks as fast as a loop runs (the default guard:
    the body is scanned in large pieces), a dense end of 27K characters (the
    last piece) or of 63K (more than ``HOLD_CAP`` undecided)."""
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    text = PROSE * (600_000 // len(PROSE)) + f"Here: {GHP}\n" + DECOY * decoys
    assert (decoys * len(DECOY) > HOLD_CAP) == (decoys == 3500)
    expected = pipeline.check(text)
    assert not expected.blocked
    out, blocked = _stream(pipeline, _pieces(text, 16))
    assert blocked is None, blocked.rule_ids
    assert out == expected.text
    assert GHP not in out


def test_a_dense_end_in_block_mode_blocks_on_the_credential() -> None:
    pipeline = OutputPipeline([SecretsFilter()])
    dense = _dense(pipeline.get(SecretsFilter))
    prose = PROSE * 3000
    expected = pipeline.check(prose + dense)
    assert expected.blocked
    assert LIMIT_RULE not in {f.rule_id for f in expected.findings}
    out, blocked = _stream(pipeline, [prose, dense])
    assert blocked is not None
    assert blocked.code == "output_blocked"
    assert "github-pat" in blocked.rule_ids
    assert LIMIT_RULE not in blocked.rule_ids
    assert GHP not in out
    assert GHP not in str(blocked)


def test_an_abandoned_dense_end_records_what_the_check_finds() -> None:
    """abort() judges what arrived as the whole answer: its findings are
    the check's, not a limit the answer never reached."""
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    dense = _dense(pipeline.get(SecretsFilter))
    prose = PROSE * 3000
    expected = pipeline.check(prose + dense)
    guard = StreamGuard(pipeline)
    out = guard.feed(prose) + guard.feed(dense)
    guard.abort()
    assert GHP not in out
    rules = {f.rule_id for f in guard.findings}
    assert LIMIT_RULE not in rules
    assert rules == {f.rule_id for f in expected.findings}


@pytest.mark.parametrize("size", [64, 1000, 0])  # 0: the prose, then the rest
def test_a_dense_end_after_expanding_prose_agrees_with_the_check(size: int) -> None:
    """The one-shot budget counts the answer's *canonical* characters, and
    NFKC expands some (U+FDFA makes 18): the answer so far, counted as it
    arrived, gave the last window a smaller budget than the check's. The
    stream counts what came before a window as the filters judged it."""
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    prose = "\ufdfa " * 15000
    dense = f"Here: {GHP}\n" + DECOY * 4000
    text = prose + dense
    expected = pipeline.check(text)
    assert not expected.blocked
    chunks = [prose, dense] if size == 0 else _pieces(text, size)
    out, blocked = _stream(pipeline, chunks, scan_share=1.0)
    assert blocked is None, blocked.rule_ids
    assert out == expected.text
    assert GHP not in out


def test_a_scan_that_fails_part_way_releases_nothing_unjudged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scan moved the decided point D before it computed the next left
    context: when that raised (a MemoryError on a large window, an
    interrupt), the findings it had accepted were lost while D had moved,
    and the next feed emitted the text before D unmasked, the credential
    with it. A scan that raises now leaves the stream as it was: the caller
    sees the error, and a stream fed on is judged as if it had not
    happened."""
    from aiinvariants.filters import _streaming

    real = _streaming._context_start
    failed_once: list[bool] = []

    def flaky(text: str, end: int, want: int) -> int | None:
        # fails once, at the scan that decides the credential
        if not failed_once and GHP in text[:end]:
            failed_once.append(True)
            raise MemoryError
        return real(text, end, want)

    monkeypatch.setattr(_streaming, "_context_start", flaky)
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    text = f"Your token is {GHP} and that is all." + PROSE * 40
    expected = pipeline.check(text)
    guard = StreamGuard(pipeline, scan_share=1.0)
    out: list[str] = []
    failed = 0
    for chunk in _pieces(text, 64):
        try:
            out.append(guard.feed(chunk))
        except MemoryError:
            failed += 1
    out.append(guard.close())
    assert failed == 1
    assert GHP not in "".join(out)
    assert "".join(out) == expected.text
