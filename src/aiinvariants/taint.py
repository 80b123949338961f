"""Run-level taint tracking (invariant I12).

An *agent run* is one task an AI agent performs for a user: several model
turns and tool calls. Prompt injection turns such a run against its user when
two things meet: the run has read data that is not public, and it has read
content an attacker may control (a web page, an e-mail, a tool's output).
From then on, a tool that can send data out of the system (an e-mail, an HTTP
request) may be the exfiltration channel. So while a run carries both taints,
a tool with a capability the policy lists under ``capabilities.confirm``
(``sends_external`` by default) runs only when a confirmation callback
approves it; otherwise :class:`~aiinvariants.ToolForbidden` is raised with
``invariant="I12"`` and ``code="tainted_run_needs_confirmation"``.

::

    with agent_run(confirm=ask_the_user) as run:
        docs = retriever.invoke(question)   # secure retrievers mark_private()
        page = fetch_url(url)                # guarded tools mark_untrusted()
        send_email(to, body)                 # now needs ask_the_user(...) -> True

The run lives in a :class:`contextvars.ContextVar`: tasks and threads started
with the context inside the block share the run (they are part of it); other
requests never see it. Taints only accumulate: nothing un-marks a run.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from aiinvariants._internal.closing import AsyncFromSync

__all__ = [
    "AgentRun",
    "ConfirmationRequest",
    "agent_run",
    "current_run",
    "mark_private",
    "mark_untrusted",
]

#: Each taint keeps at most this many source names (for audit details); the
#: taint itself is a flag and is never dropped.
MAX_SOURCES: Final = 32


@dataclass(frozen=True)
class ConfirmationRequest:
    """What a confirmation callback is asked to approve.

    Attributes:
        tool: the tool's name.
        capabilities: the tool's capabilities that need confirmation.
        subject: the subject of the principal the run acts for.
        private_sources: where the run's non-public data came from.
        untrusted_sources: where its untrusted content came from.
    """

    tool: str
    capabilities: frozenset[str]
    subject: str
    private_sources: tuple[str, ...]
    untrusted_sources: tuple[str, ...]


Confirm = Callable[[ConfirmationRequest], bool]


class AgentRun:
    """The taint state of one agent run. Build it with :func:`agent_run`."""

    __slots__ = ("_confirm", "_lock", "_private", "_untrusted")

    def __init__(self, *, confirm: Confirm | None = None) -> None:
        if confirm is not None and not callable(confirm):
            from aiinvariants.errors import PolicyError

            raise PolicyError("confirm= must be a callable returning a bool")
        self._confirm = confirm
        self._lock = threading.Lock()
        self._private: list[str] = []
        self._untrusted: list[str] = []

    @property
    def private(self) -> bool:
        """True once the run received data that is not public."""
        return bool(self._private)

    @property
    def untrusted(self) -> bool:
        """True once the run received content marked untrusted."""
        return bool(self._untrusted)

    @property
    def tainted(self) -> bool:
        """True when the run carries both taints: exfiltration needs consent."""
        return bool(self._private) and bool(self._untrusted)

    @property
    def private_sources(self) -> tuple[str, ...]:
        """The first sources of non-public data, in order."""
        return tuple(self._private)

    @property
    def untrusted_sources(self) -> tuple[str, ...]:
        """The first sources of untrusted content, in order."""
        return tuple(self._untrusted)

    def mark_private(self, source: str) -> None:
        """Record that the run received non-public data from ``source``."""
        self._mark(self._private, source)

    def mark_untrusted(self, source: str) -> None:
        """Record that the run received untrusted content from ``source``."""
        self._mark(self._untrusted, source)

    def _mark(self, into: list[str], source: str) -> None:
        name = str(source)[:200] or "<unnamed>"
        with self._lock:
            if not into or (len(into) < MAX_SOURCES and name not in into):
                into.append(name)

    def confirm(self, tool: str, capabilities: Iterable[str], subject: str) -> bool:
        """Ask the run's confirmation callback; False without one or on error.

        A callback that raises or returns anything but ``True`` (including
        an awaitable: callbacks are synchronous) is a refusal (fail closed).
        """
        callback = self._confirm
        if callback is None:
            return False
        request = ConfirmationRequest(
            tool=tool,
            capabilities=frozenset(capabilities),
            subject=subject,
            private_sources=self.private_sources,
            untrusted_sources=self.untrusted_sources,
        )
        try:
            answer = callback(request)
        except Exception:
            return False
        if inspect.isawaitable(answer):
            # Only synchronous callbacks are supported; an awaitable is not
            # an approval. Close it so no "never awaited" warning leaks.
            close = getattr(answer, "close", None)
            if callable(close):
                close()
            return False
        return answer is True

    def __repr__(self) -> str:
        return (
            f"AgentRun(private={self.private}, untrusted={self.untrusted}, "
            f"confirm={'set' if self._confirm else 'none'})"
        )


_RUN: Final[contextvars.ContextVar[AgentRun | None]] = contextvars.ContextVar(
    "aiinvariants.agent_run", default=None
)


def current_run() -> AgentRun | None:
    """The agent run of the current context, or None outside any run."""
    return _RUN.get()


def mark_private(source: str) -> None:
    """Mark the current run as having received non-public data (no-op outside)."""
    run = _RUN.get()
    if run is not None:
        run.mark_private(source)


def mark_untrusted(source: str) -> None:
    """Mark the current run as having received untrusted content (no-op outside)."""
    run = _RUN.get()
    if run is not None:
        run.mark_untrusted(source)


class agent_run(AsyncFromSync[AgentRun]):  # noqa: N801 - used like a function, as contextlib's helpers are
    """Track taint for the block: ``with agent_run(confirm=...) as run:``.

    Works as a sync and an async context manager. Nested runs are separate:
    the inner run starts clean and the outer one is restored afterwards
    (taints of the inner run are also added to the outer one, since the
    outer run's agent saw whatever its sub-run saw).

    Args:
        confirm: called with a :class:`ConfirmationRequest` when a tainted
            run calls a confirmation-needing tool; only ``True`` approves.
            Without it, such calls are refused.
    """

    __slots__ = ("_run", "_token")

    def __init__(self, *, confirm: Confirm | None = None) -> None:
        self._run = AgentRun(confirm=confirm)
        self._token: contextvars.Token[AgentRun | None] | None = None

    def __enter__(self) -> AgentRun:
        if self._token is not None:
            from aiinvariants.errors import PolicyError

            raise PolicyError("an agent_run block cannot be entered twice")
        self._token = _RUN.set(self._run)
        return self._run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._token
        if token is None:
            return
        outer = token.old_value
        _RUN.reset(token)
        if isinstance(outer, AgentRun):
            for source in self._run.private_sources:
                outer.mark_private(source)
            for source in self._run.untrusted_sources:
                outer.mark_untrusted(source)
