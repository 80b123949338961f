"""The run's taint kept per conversation thread, beside the graph's messages (I12).

A guarded ``ToolNode`` stamps its ``ToolMessage`` results with the run's
taint, so a graph resumed by another request still knows it read untrusted
content. Messages do not last: a summarization step or history trimming
(``RemoveMessage``) drops them, and the stamp with them. So each step of the
node also keeps the run's taint under the conversation's ``thread_id``
(``config["configurable"]["thread_id"]``):

- in the graph's store when it has one (``compile(store=...)``: a
  ``BaseStore`` shared by every worker), under the namespace
  :data:`NAMESPACE`;
- otherwise in this process, per guard, for the last :data:`MAX_THREADS`
  threads.

Each step first marks the current run with what is kept for its thread.
Marks only add taint: nothing here can make a run less tainted, and an entry
written by someone else can only make it stricter. A thread's taint lasts as
long as the thread: a new conversation is a new ``thread_id``.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiinvariants.taint import current_run

if TYPE_CHECKING:
    from aiinvariants import Guard
    from aiinvariants.taint import AgentRun

__all__ = [
    "MAX_THREADS",
    "NAMESPACE",
    "aremember",
    "arestore",
    "graph_runtime",
    "remember",
    "restore",
]

#: The store namespace a thread's taint is kept under.
NAMESPACE: Final = ("aiinvariants", "taint")
#: Threads whose taint this process keeps when the graph has no store.
MAX_THREADS: Final = 100_000
#: Sources kept per kind (the run keeps no more either).
_SOURCES: Final = 32
_KINDS: Final = ("private", "untrusted")
#: How the entry is put: never embedded (a store with a semantic index would
#: send it to the embedding provider) and never expiring with the store's
#: default TTL (the thread's checkpoints outlive it otherwise).
_PUT: Final[dict[str, Any]] = {"index": False, "ttl": None}

_Kept = OrderedDict[str, dict[str, tuple[str, ...]]]
_kept: weakref.WeakKeyDictionary[Guard, _Kept] = weakref.WeakKeyDictionary()
_kept_lock = threading.Lock()


def _thread_id(config: Mapping[str, Any] | None) -> str | None:
    configurable = (config or {}).get("configurable") or {}
    if not isinstance(configurable, Mapping):
        return None
    thread = configurable.get("thread_id")
    return None if thread is None else str(thread)


def _store(runtime: Any) -> Any:
    return getattr(runtime, "store", None)


class _GraphRuntime:
    """The store of the graph a call runs in, for code with no ``runtime``."""

    def __init__(self, store: Any) -> None:
        self.store = store


def graph_runtime() -> Any:
    """The enclosing graph's store (``langgraph.config.get_store()``) as a
    runtime, for a guarded tool a node calls itself; no store outside a
    graph or without LangGraph (the process keeps the taint then)."""
    try:
        from langgraph.config import get_store
    except ImportError:  # pragma: no cover - LangChain without LangGraph
        return None
    try:
        return _GraphRuntime(get_store())
    except (RuntimeError, LookupError):  # not inside a graph's run
        return None


def _taint(run: AgentRun) -> dict[str, tuple[str, ...]]:
    return {"private": run.private_sources, "untrusted": run.untrusted_sources}


def _sources(value: Any, kind: str) -> tuple[str, ...]:
    if not isinstance(value, Mapping):
        return ()
    sources = value.get(kind)
    if not isinstance(sources, list | tuple):
        return ()
    return tuple(str(source) for source in sources[:_SOURCES])


def _merged(
    old: Mapping[str, Any] | None, new: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    merged: dict[str, tuple[str, ...]] = {}
    for kind in _KINDS:
        names = list(_sources(old, kind))
        for name in new[kind]:
            if name not in names and len(names) < _SOURCES:
                names.append(name)
        merged[kind] = tuple(names)
    return merged


def _mark(run: AgentRun, kept: Any) -> None:
    for name in _sources(kept, "private"):
        run.mark_private(name)
    for name in _sources(kept, "untrusted"):
        run.mark_untrusted(name)


def _local(guard: Guard, thread: str) -> dict[str, tuple[str, ...]] | None:
    with _kept_lock:
        threads = _kept.get(guard)
        return None if threads is None else threads.get(thread)


def _keep_locally(
    guard: Guard, thread: str, taint: Mapping[str, tuple[str, ...]]
) -> None:
    with _kept_lock:
        threads = _kept.setdefault(guard, OrderedDict())
        threads[thread] = _merged(threads.get(thread), taint)
        threads.move_to_end(thread)
        while len(threads) > MAX_THREADS:
            threads.popitem(last=False)


def _restored(guard: Guard, config: Mapping[str, Any] | None) -> Any:
    """Marks the run with what the process kept; (run, thread) for the store."""
    run, thread = current_run(), _thread_id(config)
    if run is None or thread is None:
        return None
    _mark(run, _local(guard, thread))
    return run, thread


def _kept_here(guard: Guard, config: Mapping[str, Any] | None) -> Any:
    """Keeps the run's taint in the process; (thread, taint) for the store."""
    run, thread = current_run(), _thread_id(config)
    if run is None or thread is None or not (run.private or run.untrusted):
        return None
    taint = _taint(run)
    _keep_locally(guard, thread, taint)
    return thread, taint


def _stored(item: Any, taint: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    merged = _merged(getattr(item, "value", None), taint)
    return {kind: list(names) for kind, names in merged.items()}


def restore(guard: Guard, config: Mapping[str, Any] | None, runtime: Any) -> None:
    """Mark the current run with the taint kept for the config's thread."""
    found, store = _restored(guard, config), _store(runtime)
    if found is not None and store is not None:
        run, thread = found
        _mark(run, getattr(store.get(NAMESPACE, thread), "value", None))


async def arestore(
    guard: Guard, config: Mapping[str, Any] | None, runtime: Any
) -> None:
    """:func:`restore` for an async step (the store's async methods)."""
    found, store = _restored(guard, config), _store(runtime)
    if found is not None and store is not None:
        run, thread = found
        _mark(run, getattr(await store.aget(NAMESPACE, thread), "value", None))


def remember(guard: Guard, config: Mapping[str, Any] | None, runtime: Any) -> None:
    """Keep the current run's taint for the config's thread (adds only)."""
    kept, store = _kept_here(guard, config), _store(runtime)
    if kept is not None and store is not None:
        thread, taint = kept
        value = _stored(store.get(NAMESPACE, thread), taint)
        store.put(NAMESPACE, thread, value, **_PUT)


async def aremember(
    guard: Guard, config: Mapping[str, Any] | None, runtime: Any
) -> None:
    """:func:`remember` for an async step (the store's async methods)."""
    kept, store = _kept_here(guard, config), _store(runtime)
    if kept is not None and store is not None:
        thread, taint = kept
        item = await store.aget(NAMESPACE, thread)
        await store.aput(NAMESPACE, thread, _stored(item, taint), **_PUT)
