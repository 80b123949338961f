"""Run-level taint tracking and argument provenance (invariant I12).

An *agent run* is one task an AI agent performs for a user: several model
turns and tool calls. Prompt injection turns such a run against its user:
content an attacker may control (a web page, an e-mail, a tool's output)
steers a consequential action (a transfer, a deletion, an invitation), or
carries the private data the run read out of the system. So once a run has
read untrusted content, a tool with a capability the policy lists under
``capabilities.confirm`` (the consequential capabilities by default) runs
only when every checked value of its arguments traces back to the user's
request or trusted data, or a confirmation callback approves it; an
argument found only in untrusted content is refused
(``code="injected_argument"``), unless it comes from the content of a record
the user's request names ("pay the bill 'bill-december-2023.txt'"): then it
is asked (``reason="delegated"``; ``aiinvariants._internal.run_links``).
Otherwise :class:`~aiinvariants.ToolForbidden` is raised with ``invariant="I12"`` and
``code="tainted_run_needs_confirmation"``. A policy that lists
``capabilities.confirm`` itself keeps the former rule: only a run that read
private data *and* untrusted content is gated.

::

    with agent_run(confirm=ask_the_user) as run:
        docs = retriever.invoke(question)   # secure retrievers mark_private()
        page = fetch_url(url)                # guarded tools mark_untrusted()
        send_email(to, body)                 # now needs ask_the_user(...) -> True

The run lives in a :class:`contextvars.ContextVar`: tasks and threads started
with the context inside the block share the run (they are part of it); other
requests never see it. Runs nest: a sub-agent's run starts with its parent's
taints and its marks reach the parent at once. Taints only accumulate:
nothing un-marks a run. Content is untrusted unless its ``untrusted`` marker
is absent or exactly ``False`` (:func:`is_untrusted`). How values are
compared is in ``aiinvariants._internal.provenance`` and docs/run-taint.md.
"""

from __future__ import annotations

import inspect
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from aiinvariants._internal.closing import AsyncFromSync, ContextStack, entering_frame
from aiinvariants._internal.provenance import (
    INJECTED,
    TRACED,
    UNTRACED,
    ProvenanceIndex,
    named_document,
    result_texts,
)
from aiinvariants._internal.provenance_index import (
    MAX_TRUSTED_KEYS,
    MAX_UNTRUSTED_KEYS,
)
from aiinvariants._internal.run_links import MAX_LINKED_RECORDS as MAX_LINKED_RECORDS
from aiinvariants._internal.run_links import RecordLinks

__all__ = [
    "INJECTED",
    "TRACED",
    "UNTRACED",
    "AgentRun",
    "ConfirmationRequest",
    "add_untrusted",
    "agent_run",
    "current_run",
    "is_untrusted",
    "mark_private",
    "mark_untrusted",
]

#: Each taint keeps at most this many source names (for audit details); the
#: taint itself is a flag and is never dropped.
MAX_SOURCES: Final = 32
#: A call allowed in a run: (the tool's source, the link key of the
#: document the user's request names by its arguments or None, the argument
#: names, the serial of the top run that allowed it: a call pending from an
#: earlier run in the same context is never taken by another's result).
NamedCall = tuple[str, str | None, str, int]
_SERIALS: Final = itertools.count()
#: The call being made in this context (``NamedCall``). Set when a call is
#: allowed, taken by the result of the same tool.
_NAMED_CALL: Final[ContextVar[NamedCall | None]] = ContextVar(
    "aiinvariants.named_call", default=None
)


class _FromContext:
    """``record_result(named=)`` not given: the call pending in the context."""


_FROM_CONTEXT: Final = _FromContext()


def take_named_call(source: str) -> NamedCall | None:
    """The call of tool ``source`` pending in this context (allowed, its
    result not recorded yet), taken: a result recorded later (a lazy one)
    is bound to its own call, never to a later call of the same tool."""
    named = _NAMED_CALL.get()
    if named is None or named[0] != source:
        return None
    _NAMED_CALL.set(None)
    return named


@dataclass(frozen=True)
class ConfirmationRequest:
    """What a confirmation callback is asked to approve.

    Attributes:
        tool: the tool's name.
        capabilities: the tool's capabilities that need confirmation.
        subject: the subject of the principal the run acts for.
        private_sources: where the run's non-public data came from.
        untrusted_sources: where its untrusted content came from.
        reason: why it is asked: ``untraced`` (an argument is in neither the
            user's request nor trusted data), ``delegated`` (every argument
            not traced came from the content of a record the user's request
            names: "pay the bill 'bill-december-2023.txt'"), ``injected``
            (an argument came from untrusted content; asked only with
            ``injected: confirm``) or ``no_provenance`` (the run knows no
            user request).
        arguments: the names of the arguments that decided the reason.
        sources: for ``delegated``, the sources of the records the values
            came from (``tool.read_file(file_path)``), never a value.
    """

    tool: str
    capabilities: frozenset[str]
    subject: str
    private_sources: tuple[str, ...]
    untrusted_sources: tuple[str, ...]
    reason: str = "no_provenance"
    arguments: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


Confirm = Callable[[ConfirmationRequest], bool]


#: The taint kinds a run records. Each is a flag plus its first sources;
#: later kinds (integrity, provenance) are added here.
PRIVATE: Final = "private"
UNTRUSTED: Final = "untrusted"
KINDS: Final = (PRIVATE, UNTRUSTED)


def is_untrusted(metadata: Mapping[str, Any], key: str = "untrusted") -> bool:
    """True unless ``metadata`` leaves the untrusted marker absent or ``False``.

    Fail closed: a marker that is present with any other value (``True``,
    ``"true"``, ``"false"``, ``1``, ``0``, ``None``, ``"yes"``…) taints the
    run. A store that cannot keep booleans says "trusted" by leaving the key
    out, never with a string that merely reads like no.
    """
    if key not in metadata:
        return False
    return metadata[key] is not False


def _check_run_options(
    confirm: Confirm | None, user_request: str | None, trusted: Iterable[Any]
) -> None:
    """Refuse malformed ``agent_run``/``AgentRun`` options (PolicyError)."""
    from aiinvariants._errors import PolicyError

    if confirm is not None and not callable(confirm):
        raise PolicyError("confirm= must be a callable returning a bool")
    if user_request is not None and not isinstance(user_request, str):
        raise PolicyError("user_request= takes the user's request as text")
    if isinstance(trusted, str | bytes):
        raise PolicyError("trusted= takes a collection of texts, not one text")


class AgentRun:
    """The taint state of one agent run. Build it with :func:`agent_run`.

    A run nested in another one (a sub-agent) sees its parent's taints and
    passes its own to the parent at once, so a sub-agent can neither start
    clean nor hide what it read.
    """

    __slots__ = (
        "_confirm",
        "_data",
        "_has_request",
        "_late",
        "_links",
        "_lock",
        "_marks",
        "_parent",
        "_serial",
        "_trusted",
        "_untrusted",
    )

    def __init__(
        self,
        *,
        confirm: Confirm | None = None,
        parent: AgentRun | None = None,
        user_request: str | None = None,
        trusted: Iterable[Any] = (),
    ) -> None:
        _check_run_options(confirm, user_request, trusted)
        self._confirm = confirm
        self._parent = parent
        self._lock = threading.Lock()
        self._marks: dict[str, list[str]] = {kind: [] for kind in KINDS}
        # Aligned: a record or document the request names must stand in it
        # as a whole name, not inside a longer one (``holds_name``).
        self._trusted = ProvenanceIndex(cap=MAX_TRUSTED_KEYS, aligned=True)
        self._data = ProvenanceIndex(cap=MAX_TRUSTED_KEYS)
        self._untrusted = ProvenanceIndex(cap=MAX_UNTRUSTED_KEYS, loose=True)
        # What hooks supplied as the user's request once the run had read
        # untrusted content (see ``add_user_request``).
        self._late = ProvenanceIndex(cap=MAX_TRUSTED_KEYS)
        # The records the user's request names (kept by the top run).
        self._links = RecordLinks()
        self._serial = next(_SERIALS)
        self._has_request = user_request is not None
        if user_request is not None:
            self._trusted.add(user_request)
        for item in trusted:
            self.add_trusted(item)

    @property
    def parent(self) -> AgentRun | None:
        """The run this one is nested in, if any."""
        return self._parent

    @property
    def private(self) -> bool:
        """True once the run (or its parent) received data that is not public."""
        return bool(self.sources(PRIVATE))

    @property
    def untrusted(self) -> bool:
        """True once the run (or its parent) received content marked untrusted."""
        return bool(self.sources(UNTRUSTED))

    @property
    def tainted(self) -> bool:
        """True when the run carries both taints: exfiltration needs consent."""
        return self.private and self.untrusted

    @property
    def private_sources(self) -> tuple[str, ...]:
        """The first sources of non-public data, in order."""
        return self.sources(PRIVATE)

    @property
    def untrusted_sources(self) -> tuple[str, ...]:
        """The first sources of untrusted content, in order."""
        return self.sources(UNTRUSTED)

    def sources(self, kind: str) -> tuple[str, ...]:
        """The first sources of taint ``kind``, the parent's first."""
        inherited = self._parent.sources(kind) if self._parent is not None else ()
        with self._lock:
            own = tuple(self._marks[kind])
        merged = list(inherited)
        for name in own:
            if name not in merged and len(merged) < MAX_SOURCES:
                merged.append(name)
        return tuple(merged)

    def mark_private(self, source: str) -> None:
        """Record that the run received non-public data from ``source``."""
        self.mark(PRIVATE, source)

    def mark_untrusted(self, source: str) -> None:
        """Record that the run received untrusted content from ``source``."""
        self.mark(UNTRUSTED, source)

    def mark(self, kind: str, source: str) -> None:
        """Record taint ``kind`` from ``source``, here and in every parent run."""
        if kind not in self._marks:
            from aiinvariants._errors import PolicyError

            raise PolicyError(f"unknown taint kind {kind!r}; one of {KINDS}")
        name = str(source)[:200] or "<unnamed>"
        run: AgentRun | None = self
        while run is not None:
            into = run._marks[kind]
            with run._lock:
                if not into or (len(into) < MAX_SOURCES and name not in into):
                    into.append(name)
            run = run._parent

    # -- provenance of values --------------------------------------------------

    def _chain(self) -> list[AgentRun]:
        chain: list[AgentRun] = []
        run: AgentRun | None = self
        while run is not None:
            chain.append(run)
            run = run._parent
        return chain

    @property
    def has_provenance(self) -> bool:
        """True when the run (or a parent) knows the user's request or was
        given trusted data: then the arguments of consequential calls are
        traced (I12 provenance)."""
        return any(run._has_request for run in self._chain())

    def add_trusted(self, value: Any) -> None:
        """Record ``value`` (a text, or a structure of texts and numbers) as
        trusted data: what the user said later, a record the app vouches for.

        In a nested run, trusted data vouches only for values that no
        untrusted content of the run or its parents contains: a sub-agent's
        request is written by its parent's model and cannot launder a value
        that came from untrusted content.
        """
        self._has_request = True
        for _, text in result_texts(value, frozenset()):
            self._trusted.add(text)

    def add_user_request(self, value: Any) -> None:
        """Record ``value`` as the user's request as a framework hook reads
        it (the graph's ``HumanMessage`` texts, an agent run's ``user``
        input), not as the app states it.

        Before the run (or a parent) has read untrusted content, it is the
        user's request (:meth:`add_trusted`). Once it has, the same kind of
        text can be a model's: a sub-agent's task written by its parent's
        model, a tool's output an app carries in a user message. Then it
        vouches only for values no untrusted content holds; a value that
        untrusted content holds too is asked about (never run unasked,
        never refused on this text alone).
        """
        if not self._read_untrusted():
            self.add_trusted(value)
            return
        self._has_request = True
        for _, text in result_texts(value, frozenset()):
            self._late.add(text)

    def _read_untrusted(self) -> bool:
        return self.untrusted or any(
            len(run._untrusted) or run._untrusted.overflowed for run in self._chain()
        )

    def add_untrusted(self, value: Any, source: str) -> None:
        """Record the content of ``value`` as untrusted and mark the run
        untrusted from ``source``, here and in every parent run."""
        self.mark(UNTRUSTED, source)
        texts = [text for _, text in result_texts(value, frozenset())]
        for run in self._chain():
            for text in texts:
                run._untrusted.add(text)

    def record_result(
        self,
        value: Any,
        *,
        source: str,
        untrusted: bool,
        trusted_fields: frozenset[str],
        container_fields: frozenset[str] = frozenset(),
        raised: bool = False,
        named: NamedCall | _FromContext | None = _FROM_CONTEXT,
    ) -> None:
        """Record a tool's result: untrusted text, except declared-trusted
        outputs and the fields listed in ``trusted_fields``, which are trusted
        data (also in every parent run: a system of record's fields are facts
        whoever read them). ``raised``: the texts are what the tool raised
        (untrusted, and never a record the user named). ``named``: the
        call this result is of (:func:`take_named_call`, taken as the call
        started), or by default the one pending in this context.
        ``container_fields``: the trusted fields that name where a record
        lies (a channel), not the record (see ``RecordLinks``)."""
        for is_trusted, text in result_texts(value, trusted_fields):
            if is_trusted or not untrusted:
                for run in self._chain():
                    run._data.add(text)
            else:
                for run in self._chain():
                    run._untrusted.add(text)
        top = self._chain()[-1]
        if isinstance(named, _FromContext):
            named = take_named_call(source)
        if (
            named is not None
            and named[0] == source
            and named[3] == top._serial
            and named[1] is not None
            and untrusted
            and not trusted_fields
            and not raised
        ):
            top._links.named_document(named[1], value, source=f"{source}({named[2]})")
        if top._has_request and not raised:
            top._links.link(
                value,
                source=source,
                trusted_fields=trusted_fields,
                container_fields=container_fields,
                untrusted=untrusted,
                requested=top._trusted,
            )

    def note_call(self, source: str, arguments: Mapping[str, Any] | None) -> None:
        """Remember, for this context, whether the call about to run (tool
        ``source``) reads a document the user's request names by the
        call's arguments: its result is then linked (delegation)."""
        key = named_document(self, arguments) if self.has_provenance else None
        pending = _NAMED_CALL.get()
        if pending is not None and pending[0] == source:
            # A call of the same tool whose result has not come yet (a
            # generator not iterated): which result comes first is not
            # known, so neither is taken as the named document's.
            key = None
        names = ",".join(arguments or ())[:100]
        _NAMED_CALL.set((source, key, names, self._chain()[-1]._serial))

    def requested(self, forms: tuple[str, ...]) -> bool:
        """True when the top run's request or trusted data holds ``forms`` as
        a whole name (not a part of a longer one: ``website.com`` of
        ``www.dora-website.com``)."""
        return self._chain()[-1]._trusted.holds_name(forms)

    def delegated_from(self, forms: tuple[str, ...]) -> tuple[str, ...]:
        """The sources of the records the user's request names whose
        content holds ``forms`` (empty: the value is not delegated)."""
        return self._chain()[-1]._links.delegated_from(forms)

    def in_untrusted(self, forms: tuple[str, ...]) -> bool:
        """True when untrusted content of the run or a parent holds ``forms``
        (or an untrusted index overflowed: fail closed)."""
        return any(
            run._untrusted.overflowed or run._untrusted.contains(forms)
            for run in self._chain()
        )

    def provenance(self, forms: tuple[str, ...], *, whole_name: bool = False) -> str:
        """``TRACED``, ``INJECTED`` or ``UNTRACED`` for one checked value.

        - in the top run's request or trusted data: traced;
        - else in untrusted content of the run or its parents (or an
          untrusted index overflowed: fail closed): injected, unless a
          trusted tool output or a request a hook supplied late also holds
          it (a record the attacker's text names, a sub-agent's task:
          untraced, it needs confirmation);
        - else in a trusted tool output, a nested run's own request or
          trusted data, or a request a hook supplied late: traced;
        - else untraced (made up).

        ``whole_name``: the value names somewhere data can go; the request
        (and a nested run's) traces it only where it stands there as a
        whole name (``ProvenanceIndex.holds_name``).
        """
        if not forms:
            return UNTRACED
        chain = self._chain()
        top, nested = chain[-1], chain[:-1]

        def requested(run: AgentRun) -> bool:
            if whole_name:
                return run._trusted.holds_name(forms)
            return run._trusted.contains(forms)

        if requested(top) or top._links.linked(forms):
            return TRACED
        in_data = any(run._data.contains(forms) for run in chain)
        late = any(run._late.contains(forms) for run in chain)
        for run in chain:
            if run._untrusted.overflowed or run._untrusted.contains(forms):
                return UNTRACED if in_data or late else INJECTED
        if in_data or late or any(requested(run) for run in nested):
            return TRACED
        return UNTRACED

    def _callback(self) -> Confirm | None:
        run: AgentRun | None = self
        while run is not None:
            if run._confirm is not None:
                return run._confirm
            run = run._parent
        return None

    def confirm(
        self,
        tool: str,
        capabilities: Iterable[str],
        subject: str,
        *,
        reason: str = "no_provenance",
        arguments: tuple[str, ...] = (),
        sources: tuple[str, ...] = (),
    ) -> bool:
        """Ask the run's confirmation callback; False without one or on error.

        A nested run without its own callback asks its parent's. A callback
        that raises or returns anything but ``True`` (including an awaitable:
        callbacks are synchronous) is a refusal (fail closed).
        """
        callback = self._callback()
        if callback is None:
            return False
        request = ConfirmationRequest(
            tool=tool,
            capabilities=frozenset(capabilities),
            subject=subject,
            private_sources=self.private_sources,
            untrusted_sources=self.untrusted_sources,
            reason=reason,
            arguments=arguments,
            sources=sources,
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
            f"confirm={'set' if self._callback() else 'none'}, "
            f"nested={self._parent is not None})"
        )


#: A task or thread holding a copy of a context with a generator's run in it
#: works in that run: it may have been started inside the generator's block
#: (a streaming agent gathering tool calls), and losing taint fails open.
_RUNS: Final[ContextStack[AgentRun]] = ContextStack(
    "aiinvariants.agent_run", copies_inherit=True
)


def current_run() -> AgentRun | None:
    """The agent run of the current context, or None outside any run."""
    run, below, inherited = _RUNS.current_and_below()
    if inherited and run is not None:
        return _Inherited(run, below)
    return run


class _Inherited(AgentRun):
    """A generator's run seen from a task or thread holding a copy of its
    context, which may have been made inside the generator's block or by
    its caller between iterations. Its taints and marks are the run's; a
    confirmation needs the run's callback *and* that of the run the caller
    would otherwise be in, so a sub-agent's lenient callback never
    approves its caller's calls."""

    __slots__ = ("_below",)

    def __init__(self, run: AgentRun, below: AgentRun | None) -> None:
        super().__init__(parent=run)
        self._below = below

    def _callback(self) -> Confirm | None:
        own = super()._callback()
        if own is None or self._below is None:
            return own
        other = self._below._callback()
        if other is None:
            return None
        first: Confirm = own
        second: Confirm = other
        return lambda request: first(request) is True and second(request) is True


def mark_private(source: str) -> None:
    """Mark the current run as having received non-public data (no-op outside)."""
    run = _RUNS.current()
    if run is not None:
        run.mark_private(source)


def mark_untrusted(source: str) -> None:
    """Mark the current run as having received untrusted content (no-op outside)."""
    run = _RUNS.current()
    if run is not None:
        run.mark_untrusted(source)


def add_untrusted(value: Any, source: str) -> None:
    """Record untrusted content in the current run, for argument provenance
    and taint (no-op outside a run). Retrievers and document loaders call it
    with what they hand the model."""
    run = _RUNS.current()
    if run is not None:
        run.add_untrusted(value, source)


class agent_run(AsyncFromSync[AgentRun]):  # noqa: N801 - used like a function, as contextlib's helpers are
    """Track taint for the block: ``with agent_run(confirm=...) as run:``.

    Works as a sync and an async context manager. Runs nest: a run entered
    inside another one starts with the outer run's taints, and every mark
    it receives reaches the outer run at once (a sub-agent saw what its
    parent saw, and its parent sees what it read). Tasks and threads started
    with the block's context (``asyncio`` tasks, :func:`carry_principal`,
    :class:`~aiinvariants._principal.PrincipalExecutor`) mark the same run.
    Entered in an iterated generator, the run holds only while the
    generator runs, never in the caller between iterations. One
    ``agent_run`` object is one run: entering it twice is refused.

    Args:
        confirm: called with a :class:`ConfirmationRequest` when a tainted
            run calls a confirmation-needing tool; only ``True`` approves.
            Without it, a nested run asks its parent's callback; a run
            without any refuses such calls.
        user_request: what the user asked, as they wrote it. With it, a
            consequential call whose arguments all trace back to the request
            or trusted data needs no confirmation, and one whose argument
            came from untrusted content only is injected (stops an injected
            recipient, account or URL that the user never named).
        trusted: more trusted data (texts, or structures of them): records
            the app vouches for. ``run.add_trusted(...)`` adds more later.
    """

    __slots__ = ("_confirm", "_entered", "_lock", "_request", "_run", "_trusted")

    def __init__(
        self,
        *,
        confirm: Confirm | None = None,
        user_request: str | None = None,
        trusted: Iterable[Any] = (),
    ) -> None:
        _check_run_options(confirm, user_request, trusted)
        self._confirm = confirm
        self._request = user_request
        self._trusted = tuple(trusted)
        self._run: AgentRun | None = None
        self._entered = False
        self._lock = threading.Lock()

    def __enter__(self) -> AgentRun:
        with self._lock:
            if self._entered:
                from aiinvariants._errors import PolicyError

                raise PolicyError(
                    "an agent_run block cannot be entered twice; make one "
                    "agent_run() per run (nested runs inherit taint)"
                )
            self._entered = True
        run = AgentRun(
            confirm=self._confirm,
            parent=_RUNS.current(),
            user_request=self._request,
            trusted=self._trusted,
        )
        self._run = run
        _RUNS.push(self, run, frame=entering_frame(1))
        return run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            _RUNS.pop(self)
        except LookupError:
            if exc_type is GeneratorExit:
                # A generator closed from elsewhere (garbage collection, an
                # async generator finaliser): its block is not in this
                # context, so there is nothing here to restore.
                return
            from aiinvariants._errors import PolicyError

            raise PolicyError(
                "agent_run block left in another context than it was entered"
            ) from None
