"""A stream window that runs out of the secrets filter's judging budget.

The judging budget of a scan grows with the text it judges (``budget_for``:
a base plus one site per 32 characters). A stream scans windows, so a
dense stretch of candidates (a credential, then decoys the judge dismisses)
can exhaust a window's budget where the whole answer, longer, stays within
its own: the stream blocked where the one-shot check did not. Such a window
now decides nothing: nothing of it is emitted, and it is scanned again once
it has doubled (a bounded number of rescans), or blocked like the check
once ``HOLD_CAP`` characters are undecided, or at ``close()``.

What an attacker can try, each asserting the secure outcome:

* the dense stretch, then enough prose: the stream agrees with the check
  (redact: the same text; block: the credential's own rule blocks);
* the dense stretch at the end of the answer: blocked by the limit, as the
  check is, nothing of the credential emitted;
* candidates that never end (decoys all the way): blocked within the hold
  cap, with a bounded number of scans (counted);
* the same in chunks of any size, and abandoned half-way (abort): the
  credential is never emitted and the abort is audited with the limit.
"""

from __future__ import annotations

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.audit import AuditLog
from aiinvariants.audit._sinks import MemorySink
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard
from aiinvariants.filters._secret_sites import LIMIT_RULE, Exhausted, ScanState
from aiinvariants.filters._streaming import HOLD_CAP

pytestmark = pytest.mark.usefixtures("secrets_engine")

GHP = "ghp_" + "Xq7Lm2Rt9Vb4Nc8Kd1Fz6Hs3Jw5Pe0Ya2UgT"
DECOY = "password=abcdefg1 "  # a regex match the judge dismisses (weak value)
PROSE = "\nAll good, nothing more to say here. "


class Counting(OutputPipeline):
    """The real pipeline, counting the stream's scans."""

    scans = 0

    def scan_and_hold(self, text: str) -> tuple[list, int]:  # type: ignore[type-arg]
        self.scans += 1
        return super().scan_and_hold(text)


def _exhausts(secrets: SecretsFilter, text: str) -> bool:
    try:
        secrets._candidates(ScanState(text))
    except Exhausted:
        return True
    return False


def _dense(secrets: SecretsFilter) -> str:
    """A credential, then the fewest decoys that exhaust a scan of it."""
    for count in range(300, 2000, 20):
        text = f"Here: {GHP}\n" + DECOY * count
        if _exhausts(secrets, text):
            return text
    raise AssertionError("no stretch exhausts the budget")


def _stream(
    pipeline: OutputPipeline, text: str, size: int, **options: float
) -> tuple[str, OutputBlocked | None]:
    guard = StreamGuard(pipeline, **options)  # type: ignore[arg-type]
    out: list[str] = []
    try:
        for at in range(0, len(text), size):
            out.append(guard.feed(text[at : at + size]))
        out.append(guard.close())
    except OutputBlocked as exc:
        return "".join(out), exc
    return "".join(out), None


@pytest.mark.parametrize("size", [64, 1024, 8192, 1 << 20])
@pytest.mark.parametrize("share", [1.0, 0.25])
def test_a_dense_stretch_then_prose_agrees_with_the_check(
    size: int, share: float
) -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    text = _dense(pipeline.get(SecretsFilter)) + PROSE * 4000
    expected = pipeline.check(text)
    assert not expected.blocked
    out, blocked = _stream(pipeline, text, size, scan_share=share)
    assert blocked is None
    assert out == expected.text
    assert GHP not in out


def test_a_dense_stretch_then_prose_blocks_on_the_credential() -> None:
    pipeline = OutputPipeline([SecretsFilter()])
    text = _dense(pipeline.get(SecretsFilter)) + PROSE * 4000
    expected = pipeline.check(text)
    assert expected.blocked
    out, blocked = _stream(pipeline, text, 512)
    assert blocked is not None
    assert blocked.code == "output_blocked"
    # the first blocking finding raises: the credential's own rule
    assert "github-pat" in blocked.rule_ids
    assert LIMIT_RULE not in blocked.rule_ids
    assert set(blocked.rule_ids) <= {
        f.rule_id for f in expected.findings if f.action == "block"
    }
    assert GHP not in out
    assert GHP not in str(blocked)


@pytest.mark.parametrize("action", ["block", "redact"])
@pytest.mark.parametrize("size", [64, 4096])
def test_a_dense_stretch_at_the_end_never_releases_the_credential(
    action: str, size: int
) -> None:
    """The check of the whole answer runs out of its budget. The stream
    either blocks (the limit, or the credential's own rule when a window
    decided it before the decoys piled up), or judged every candidate in
    windows that each stayed within their own budget: then its text is the
    check's with a budget large enough to judge them all."""
    pipeline = OutputPipeline([SecretsFilter(action=action)])  # type: ignore[arg-type]
    text = "Hello. " + _dense(pipeline.get(SecretsFilter))
    expected = pipeline.check(text)
    assert expected.blocked
    assert LIMIT_RULE in {f.rule_id for f in expected.findings}
    out, blocked = _stream(pipeline, text, size)
    assert GHP not in out
    if blocked is not None:
        assert LIMIT_RULE in blocked.rule_ids or "github-pat" in blocked.rule_ids
        assert GHP not in str(blocked)
        return
    assert action == "redact"
    unbounded = SecretsFilter(action="redact")
    unbounded._budget = 1 << 30  # every candidate judged
    assert out == OutputPipeline([unbounded]).check(text).text


def test_decoys_without_end_block_within_the_cap_in_few_scans() -> None:
    """Candidates all the way, in chunks large enough that every window is
    past its budget (windows of small chunks each stay within their own and
    judge every candidate). The stream blocks once HOLD_CAP characters are
    undecided, never emits the credential, and rescans only when the
    window has doubled."""
    pipeline = Counting([SecretsFilter(action="redact")])
    text = f"Here: {GHP}\n" + DECOY * (2 * HOLD_CAP // len(DECOY))
    size = 12_288  # past 10.5K characters of decoys a window is exhausted
    guard = StreamGuard(pipeline, scan_share=1)
    out: list[str] = []
    blocked = None
    worst = 0
    try:
        for at in range(0, len(text), size):
            out.append(guard.feed(text[at : at + size]))
            worst = max(worst, guard.held_back)
        out.append(guard.close())
    except OutputBlocked as exc:
        blocked = exc
    assert blocked is not None
    assert LIMIT_RULE in blocked.rule_ids
    assert GHP not in "".join(out)
    assert worst <= HOLD_CAP + size
    # 12K (past its budget), then once doubled; past the cap it blocks
    assert pipeline.scans <= 4


def test_an_abandoned_dense_stretch_is_audited_with_the_limit() -> None:
    sink = MemorySink(capacity=None)
    pipeline = OutputPipeline([SecretsFilter(action="redact")], audit=AuditLog([sink]))
    dense = _dense(pipeline.get(SecretsFilter))
    guard = StreamGuard(pipeline)
    out = guard.feed("Hello, here it is. ")
    out += guard.feed(dense)  # one window, past its budget: held, undecided
    assert guard.held_back >= len(dense)
    guard.abort()
    assert GHP not in out
    assert LIMIT_RULE in {f.rule_id for f in guard.findings}
    assert any(LIMIT_RULE in e.reason for e in sink.events)
