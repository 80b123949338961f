"""Small bases for context managers: close on exit, ``async with`` from ``with``,
and a context-local stack whose entries stay in their block."""

from __future__ import annotations

import contextvars
import inspect
import sys
import threading
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Final, Generic, Self, TypeVar

__all__ = [
    "SCOPED",
    "AsyncFromSync",
    "Closing",
    "ContextStack",
    "entering_frame",
    "pinned_context",
]

_T = TypeVar("_T")


class Closing:
    """``with obj:`` returns ``obj`` and calls ``obj.close()`` on exit."""

    __slots__ = ()

    def close(self) -> None:
        """Release what the object holds. Subclasses override it."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncFromSync(Generic[_T]):
    """``async with obj`` does exactly what ``with obj`` does.

    For context managers whose work is synchronous (setting context
    variables) but which must also serve ``async with`` blocks.
    """

    __slots__ = ()

    def __enter__(self) -> _T:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> _T:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


# -- context that stays in its block ------------------------------------------

#: Packages whose frames drive a generator *as a context manager* (contextlib,
#: pytest's yield fixtures, pluggy's hook wrappers): what the generator
#: enters before its ``yield`` is meant for the caller's block.
CONTEXT_DRIVERS: Final = frozenset({"contextlib", "pluggy", "_pytest"})
_GENERATOR_FLAGS: Final = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def entering_frame(skip: int) -> FrameType | None:
    """The generator frame a block is entered from, if its scope must hold there.

    ``skip`` frames above the caller are the context manager's own
    (``__enter__``, ``__aenter__``). Returns the frame when it is a generator
    or async generator iterated as such: a principal or run it enters holds
    only while that frame runs, never in the caller between iterations.
    Returns None for ordinary frames and for generators driven as context
    managers (``contextlib.contextmanager``, pytest fixtures and hook
    wrappers), whose ``yield`` hands the block to the caller on purpose.
    """
    frame: FrameType | None = sys._getframe(skip + 1)
    while frame is not None:
        # Through our own __aenter__, contextlib's ExitStack.enter_context and
        # an app's own wrapper (a class whose __enter__ enters acting_as) to
        # the frame whose block it is.
        while frame is not None and (
            _plumbing(frame) or frame.f_code.co_name in _ENTER_NAMES
        ):
            frame = frame.f_back
        if frame is None or not frame.f_code.co_flags & _GENERATOR_FLAGS:
            return None
        driver = frame.f_back
        while driver is not None and driver.f_code in _OWN_CODES:
            driver = driver.f_back
        module = "" if driver is None else str(driver.f_globals.get("__name__", ""))
        package = module.partition(".")[0]
        if package == "contextlib":
            # A helper built with contextlib.(async)contextmanager hands its
            # block to whoever entered the helper: decide for that frame (an
            # iterated generator that enters the helper and yields must not
            # leave it active in its caller).
            frame = driver
            continue
        if package in CONTEXT_DRIVERS:
            return None
        return frame
    return None


#: Frames of a context manager's entry: an app's wrapper class entering
#: acting_as in its own __enter__ hands the block to its caller.
_ENTER_NAMES: Final = frozenset({"__enter__", "__aenter__"})


def _plumbing(frame: FrameType) -> bool:
    return frame.f_code in _OWN_CODES or (
        frame.f_globals.get("__name__") == "contextlib"
        and not frame.f_code.co_flags & _GENERATOR_FLAGS
    )


def _task_key() -> int | None:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    loop = asyncio._get_running_loop()  # no exception outside a loop
    if loop is None:
        return None
    task = asyncio.current_task(loop)
    return None if task is None else id(task)


def _on_stack(frame: FrameType) -> bool:
    current: FrameType | None = sys._getframe(2)
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False


#: The fast-path value of a stack whose top entry must be resolved.
SCOPED: Final = object()
_SCOPED: Final = SCOPED


@dataclass(frozen=True, slots=True)
class _Entry(Generic[_T]):
    owner: object
    value: _T
    frame: FrameType | None
    thread: int
    task: int | None


class ContextStack(Generic[_T]):
    """A context-local stack of block values (principal, agent run…).

    Each ``with`` pushes an entry into the *current context* and pops its own
    entry on exit, so one context manager object entered by two threads or
    tasks keeps their entries apart, and an exit out of order never restores
    another block's value. An entry pushed from an iterated generator
    (:func:`entering_frame`) is in force only while that generator's frame
    is running in the thread and task that entered it: between iterations
    the caller sees the value below it, and so does any other thread or task
    (unless started with :func:`pinned_context`, which resolves the entries
    when the context is copied).

    ``copies_inherit=True`` is the fail-closed choice for state that must not
    be lost rather than must not be seen (a run's taint): another thread or
    task holding a copy of the context cannot tell whether the copy was made
    inside the generator's block, so a generator's entry holds there.
    """

    __slots__ = ("_copies_inherit", "_top", "_var")

    def __init__(self, name: str, *, copies_inherit: bool = False) -> None:
        self._copies_inherit = copies_inherit
        self._var: contextvars.ContextVar[tuple[_Entry[_T], ...]] = (
            contextvars.ContextVar(name, default=())
        )
        # The top value when it holds everywhere (the common case), so a
        # read is one ContextVar.get; _SCOPED when it must be resolved.
        self._top: contextvars.ContextVar[object] = contextvars.ContextVar(
            name + ".top", default=None
        )
        _STACKS.append(self)  # type: ignore[arg-type]

    def _set(self, stack: tuple[_Entry[_T], ...]) -> None:
        self._var.set(stack)
        if not stack:
            self._top.set(None)
        else:
            top = stack[-1]
            self._top.set(top.value if top.frame is None else _SCOPED)

    def push(self, owner: object, value: _T, *, frame: FrameType | None) -> None:
        entry = _Entry(owner, value, frame, threading.get_ident(), _task_key())
        self._set((*self._var.get(), entry))

    def pop(self, owner: object) -> _T:
        """Remove ``owner``'s latest entry of this context; return its value.

        Raises:
            LookupError: ``owner`` has no entry in this context.
        """
        stack = self._var.get()
        for index in range(len(stack) - 1, -1, -1):
            if stack[index].owner is owner:
                self._set(stack[:index] + stack[index + 1 :])
                return stack[index].value
        raise LookupError("no entry of this block in the current context")

    @property
    def top(self) -> contextvars.ContextVar[object]:
        """The top value when it holds everywhere, :data:`SCOPED` when it
        must be resolved with :meth:`current`, None when empty (hot paths
        read it directly)."""
        return self._top

    def current(self) -> _T | None:
        """The value in force here, or None."""
        top = self._top.get()
        if top is not _SCOPED:
            return top  # type: ignore[return-value]
        return self._resolve(self._var.get())

    def current_and_below(self) -> tuple[_T | None, _T | None, bool]:
        """The value in force here, the value that would be in force if no
        entry held by inheritance alone, and whether they differ."""
        top = self._top.get()
        if top is not _SCOPED:
            return top, top, False  # type: ignore[return-value]
        stack = self._var.get()
        value = self._resolve(stack)
        if not self._copies_inherit:
            return value, value, False
        below: _T | None = None
        for entry in reversed(stack):
            if entry.frame is None or self._own_in_force(entry):
                below = entry.value
                break
        return value, below, value is not below

    def values(self) -> tuple[_T, ...]:
        """Every value in force here, innermost last."""
        stack = self._var.get()
        return tuple(e.value for e in stack if self._in_force(e))

    def _resolve(self, stack: tuple[_Entry[_T], ...]) -> _T | None:
        for entry in reversed(stack):
            if self._in_force(entry):
                return entry.value
        return None

    def _pinned(self) -> tuple[_Entry[_T], ...]:
        """The entries in force here, each made to hold everywhere."""
        return tuple(
            # An entry in force here by inheritance alone stays so in the
            # copy (it is no more certain there than here).
            e
            if e.frame is not None and not self._own_in_force(e)
            else _Entry(e.owner, e.value, None, e.thread, e.task)
            for e in self._var.get()
            if self._in_force(e)
        )

    @staticmethod
    def _own_in_force(entry: _Entry[_T]) -> bool:
        """In force here without inheritance: this thread and task, running."""
        if entry.thread != threading.get_ident() or entry.task != _task_key():
            return False
        return entry.frame is None or _on_stack(entry.frame)

    def _in_force(self, entry: _Entry[_T]) -> bool:
        if entry.frame is None:
            return True
        if entry.thread != threading.get_ident() or entry.task != _task_key():
            # Another thread or task holds a copy of this context: whether
            # it was made inside the generator's block or between its
            # iterations cannot be told, so the generator's entry holds
            # there only for stacks that must fail closed by inheriting.
            # pinned_context() copies a context with the entries resolved
            # at the time of the copy.
            return self._copies_inherit
        return _on_stack(entry.frame)


_STACKS: Final[list[ContextStack[object]]] = []


def pinned_context() -> contextvars.Context:
    """A copy of the current context in which every block holds as it does here.

    An entry made in a generator holds only while that generator runs; a
    copy made now (for a thread or a pool) would lose it or, between
    iterations, must not get it. This copy keeps exactly the entries in
    force at the moment of the copy, made to hold in the copy everywhere.
    """
    context = contextvars.copy_context()
    pinned = [(stack, stack._pinned()) for stack in _STACKS]

    def apply() -> None:
        for stack, entries in pinned:
            stack._set(entries)

    context.run(apply)
    return context


_OWN_CODES: Final = frozenset(
    {AsyncFromSync.__aenter__.__code__, AsyncFromSync.__aexit__.__code__}
)
