"""Assertion helpers for deterministic invariants, with readable failures.

::

    from aiinvariants.testing import assert_allowed, assert_denied, capture_decisions

    with as_user("bob", scopes="tickets:read"):
        denial = assert_denied(read_customer, 7, code="scope_missing")
    with capture_decisions() as decisions:
        read_ticket(1)
    assert decisions.reasons() == ["scopes_held"]
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from aiinvariants._errors import InvariantViolation
from aiinvariants._principal import current_principal
from aiinvariants.audit import AuditEvent, capture

__all__ = [
    "Decisions",
    "assert_allowed",
    "assert_denied",
    "assert_never_reveals",
    "capture_decisions",
]


class Decisions(list[AuditEvent]):
    """The audit events a :func:`capture_decisions` block recorded, in order."""

    def denied(self) -> list[AuditEvent]:
        """The denials."""
        return [event for event in self if event.decision == "deny"]

    def allowed(self) -> list[AuditEvent]:
        """The allowed decisions."""
        return [event for event in self if event.decision == "allow"]

    def reasons(self) -> list[str]:
        """The reason code of every decision, in order."""
        return [event.reason for event in self]

    def about(self, invariant: str) -> list[AuditEvent]:
        """The decisions about one invariant (``"I1"``…)."""
        return [event for event in self if event.invariant == invariant]


@contextmanager
def capture_decisions() -> Iterator[Decisions]:
    """Collect every decision made in this context while the block runs.

    Decisions of every guard are captured, whether or not it has audit
    sinks; nothing is captured from threads that did not inherit the
    context (see :class:`aiinvariants.PrincipalExecutor`).
    """
    with capture(Decisions()) as decisions:
        yield decisions


def _complete(result: Any) -> Any:
    """Run what a call returned far enough for its checks to have run."""
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    if inspect.isgenerator(result):
        # Guarded generators check when iteration starts.
        return list(result)
    if inspect.isasyncgen(result):

        async def drain() -> list[Any]:
            return [item async for item in result]

        return asyncio.run(drain())
    return result


def _describe(exc: InvariantViolation) -> str:
    subject = f" (subject {exc.subject!r})" if exc.subject else ""
    return f"{type(exc).__name__} {exc}{subject}"


def assert_denied(
    call: Callable[..., Any],
    /,
    *args: Any,
    invariant: str | None = None,
    code: str | None = None,
    **kwargs: Any,
) -> InvariantViolation:
    """Assert that ``call(*args, **kwargs)`` is denied; return the denial.

    Coroutines are awaited and generators iterated, so the check of a
    guarded async function or generator runs.

    Args:
        call: the guarded callable.
        invariant: the invariant id the denial must carry (``"I1"``).
        code: the reason code it must carry (``"scope_missing"``).

    Raises:
        AssertionError: the call was allowed, or denied for another reason.
    """
    who = current_principal().subject
    try:
        result = _complete(call(*args, **kwargs))
    except InvariantViolation as exc:
        if invariant is not None and exc.invariant != invariant:
            raise AssertionError(
                f"expected a denial under {invariant}, got {_describe(exc)}"
            ) from exc
        if code is not None and exc.code != code:
            raise AssertionError(
                f"expected a denial with code {code!r}, got {_describe(exc)}"
            ) from exc
        return exc
    expected = " ".join(
        part
        for part in (
            f"under {invariant}" if invariant else "",
            f"with code {code!r}" if code else "",
        )
        if part
    )
    raise AssertionError(
        f"expected a denial{' ' + expected if expected else ''}, but the call "
        f"was allowed for subject {who!r} and returned {type(result).__name__}"
    )


def assert_allowed(call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Assert that ``call(*args, **kwargs)`` is allowed; return its result.

    Coroutines are awaited and generators drained into a list.

    Raises:
        AssertionError: an invariant denied the call; the message names the
            invariant, the code and the subject.
    """
    try:
        return _complete(call(*args, **kwargs))
    except InvariantViolation as exc:
        raise AssertionError(
            f"expected the call to be allowed, but it was denied: {_describe(exc)}"
        ) from exc


def assert_never_reveals(
    outputs: str | Iterable[str],
    *,
    secrets: Iterable[str] = (),
    system_prompt: str = "",
    hidden: Iterable[str] = (),
    threshold: float = 0.6,
    any_credential: bool = False,
) -> None:
    """Assert that no output reveals a secret, the system prompt or a hidden text.

    Each output is scanned with the library's own filters: registered
    secrets are caught verbatim, re-cased, encoded (base64, hex, URL) or with
    separators and zero-width characters inserted; the system prompt and
    hidden policies are caught verbatim or near-verbatim (word shingles,
    ``threshold`` as in the policy).

    Args:
        outputs: one output or many (e.g. a model's answers to attack prompts).
        secrets: values that must never appear (at least 8 letters or digits).
        system_prompt: the system prompt that must not be reproduced.
        hidden: hidden policies or instructions that must not be reproduced.
        threshold: the share of a protected text's shingles that counts as
            a copy.
        any_credential: also fail on any credential the provider ruleset
            recognises, registered or not.

    Raises:
        AssertionError: an output reveals something. The message names the
            output's index, the rule and the span, never the revealed text.
    """
    from aiinvariants.filters import (
        OutputPipeline,
        SecretsFilter,
        SystemPromptLeakFilter,
    )

    texts = [outputs] if isinstance(outputs, str) else list(outputs)
    registered = [secrets] if isinstance(secrets, str) else list(secrets)
    hidden_texts = [hidden] if isinstance(hidden, str) else list(hidden)
    pipeline = OutputPipeline(
        [
            SecretsFilter(registered=registered, rules=None if any_credential else ()),
            SystemPromptLeakFilter(
                system_prompt=system_prompt,
                hidden=hidden_texts,
                threshold=threshold,
                canary=False,
            ),
        ]
    )
    problems: list[str] = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"output #{index} is {type(text).__name__}, not str")
        for finding in pipeline.scan(text):
            problems.append(
                f"output #{index} reveals {finding.rule_id} at "
                f"{finding.start}-{finding.end} (fingerprint {finding.fingerprint})"
            )
    if problems:
        shown = problems[:20]
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AssertionError(
            f"{len(problems)} leak(s) in {len(texts)} output(s):\n  "
            + "\n  ".join(shown)
            + more
        )
