"""Cost of reading and setting the principal (issue #11, point 8).

``acting_as`` now records each block in a context-local stack so a block
stays in its own thread, task and generator. Read from an ordinary block,
``current_principal()`` is one ``ContextVar.get`` and a tuple look-up; read
inside a generator's block it also checks that the generator is running.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator

from aiinvariants import Principal, acting_as, current_principal

from ._harness import Result, compare, print_table

_PLAIN: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "bench.plain", default=None
)
_CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bench.correlation", default=None
)


def run() -> None:
    alice = Principal(subject="alice", authenticated=True, scopes="kb:read")

    def set_reset() -> None:
        token = _PLAIN.set(alice)
        _PLAIN.reset(token)

    def before_read() -> Principal | None:
        # What current_principal() did before issue #11: one ContextVar read.
        return _PLAIN.get()

    def before_block() -> None:
        # What acting_as did before issue #11: two ContextVars set and reset.
        token = _PLAIN.set(alice)
        correlation = _CORRELATION.set(_CORRELATION.get() or uuid.uuid4().hex)
        _CORRELATION.reset(correlation)
        _PLAIN.reset(token)

    def enter_exit() -> None:
        with acting_as(alice):
            pass

    block = acting_as(alice)

    def shared_enter_exit() -> None:
        with block:
            pass

    with acting_as(alice):
        token = _PLAIN.set(alice)
        reads = compare(
            {
                "ContextVar.get (baseline)": _PLAIN.get,
                "before #11: a function reading one ContextVar": before_read,
                "current_principal(), in a with block": current_principal,
            },
            baseline="ContextVar.get (baseline)",
            number=50_000,
            repeat=9,
        )

        def in_generator() -> Iterator[list[Result]]:
            with acting_as(alice):
                yield compare(
                    {
                        "ContextVar.get (baseline)": _PLAIN.get,
                        "current_principal(), in a generator's block": (
                            current_principal
                        ),
                    },
                    baseline="ContextVar.get (baseline)",
                    number=50_000,
                    repeat=9,
                )

        reads += next(in_generator())[1:]
        _PLAIN.reset(token)
    print_table("current_principal() per read", reads)
    blocks = compare(
        {
            "ContextVar set+reset (baseline)": set_reset,
            "before #11: two ContextVars + correlation id": before_block,
            "with acting_as(p): (new object)": enter_exit,
            "with shared acting_as object": shared_enter_exit,
        },
        baseline="ContextVar set+reset (baseline)",
        number=20_000,
        repeat=9,
    )
    print_table("entering and leaving a block", blocks)
