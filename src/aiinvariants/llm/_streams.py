"""Stream wrappers shared by the provider integrations.

A provider stream is an iterator of events. An *event filter* rewrites each
event so that its text deltas carry only text a
:class:`~aiinvariants.filters.StreamGuard` has released, and may add events
(the text released when a block ends). :class:`GuardedStream` and
:class:`AsyncGuardedStream` apply a filter to a sync or async stream and
close the provider stream when iteration ends, fails or is abandoned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

__all__ = ["AsyncGuardedStream", "EventFilter", "GuardedStream"]


class EventFilter(Protocol):
    """Rewrites a provider's stream events."""

    def process(self, event: Any) -> list[Any]:
        """The events to yield for ``event`` (rewritten, maybe with more)."""
        ...

    def finish(self) -> list[Any]:
        """The events to yield when the provider stream ends."""
        ...


class GuardedStream:
    """A provider stream whose events pass an :class:`EventFilter`.

    Iterate it like the provider's stream; it is also a context manager.
    ``OutputBlocked`` is raised from iteration before any unsafe text is
    yielded, and the provider stream is closed.
    """

    def __init__(self, inner: Any, events: EventFilter) -> None:
        self._inner = inner
        self._events = events

    def __iter__(self) -> Iterator[Any]:
        try:
            for event in self._inner:
                yield from self._events.process(event)
            yield from self._events.finish()
        finally:
            self.close()

    def close(self) -> None:
        """Close the provider stream."""
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGuardedStream:
    """The async form of :class:`GuardedStream`."""

    def __init__(self, inner: Any, events: EventFilter) -> None:
        self._inner = inner
        self._events = events

    async def _run(self) -> AsyncIterator[Any]:
        try:
            async for event in self._inner:
                for out in self._events.process(event):
                    yield out
            for out in self._events.finish():
                yield out
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._run()

    async def aclose(self) -> None:
        """Close the provider stream."""
        close = getattr(self._inner, "close", None) or getattr(
            self._inner, "aclose", None
        )
        if callable(close):
            result = close()
            if hasattr(result, "__await__"):
                await result

    async def __aenter__(self) -> AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
