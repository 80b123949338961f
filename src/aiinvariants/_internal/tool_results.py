"""Reading every label a tool result carries, whatever its shape.

A tool's declared data level is a ceiling on what it returns
(``aiinvariants.tools.capped_tool``). A result is read where a caller or a
framework would find documents: at any depth of mappings, sequences, sets,
dataclasses and pydantic models (LangChain ``ToolMessage.artifact``,
LlamaIndex ``NodeWithScore``), in JSON text, and in each item a generator or
async generator yields or an awaitable returns - also when a plain function
returns that lazy result.
"""

from __future__ import annotations

import collections
import collections.abc
import contextlib
import dataclasses
import functools
import inspect
import re
import types
from collections.abc import (
    AsyncGenerator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Final, cast

from pydantic import BaseModel

from aiinvariants._classification import CLASSIFICATION
from aiinvariants._internal import strict_json
from aiinvariants._internal.canonical import fold

__all__ = ["SCALARS", "UNREADABLE", "capped", "labels_in"]

#: Decides one (part of a) result; raises to withhold it.
Check = Callable[[Any], None]

_MAX_SCANNED_NODES: Final = 100_000
_MAX_DEPTH: Final = 32
_MAX_JSON_CHARS: Final = 1 << 20
SCALARS: Final = (str, bytes, bytearray, int, float, bool, type(None))
_COLLECTIONS: Final = (
    list,
    tuple,
    collections.abc.Set,
    collections.abc.Sequence,
    collections.abc.MappingView,
    collections.deque,
)
#: Stands for a result that could not be read to the end: above any ceiling.
UNREADABLE: Final = object()
_NOT_JSON: Final = object()
#: Problems a lenient reader reads past (syntax that JSON5 or a Python repr
#: allows, NaN, long numbers): such a text is read for the word only.
_LENIENT_READS: Final = frozenset({"syntax", "constant", "number"})
_ESCAPE: Final = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})")
_UTF8_BOM: Final = b"\xef\xbb\xbf"


def _is_label_key(key: object) -> bool:
    # "Classification", " classification", a fullwidth spelling: a label
    # under a key the authorizer does not read is not a missing label.
    return isinstance(key, str) and fold(key) == CLASSIFICATION


def labels_in(value: Any) -> list[object]:
    """Every classification label a tool result carries, at any depth.

    Documents and nodes (``metadata``), mappings, sequences and sets,
    dataclasses, pydantic models (LangChain ``ToolMessage.artifact``,
    LlamaIndex ``NodeWithScore``) and JSON text are read. A label under a
    variant of the key (``Classification``) counts as an unknown label; a
    result too large or too deep to read counts as one above every level.
    """
    found: list[object] = []
    todo: list[tuple[Any, int]] = [(value, 0)]
    seen: set[int] = set()
    nodes = 0
    while todo:
        item, depth = todo.pop()
        if isinstance(item, str | bytes | bytearray):
            parsed = _json_in(item)
            if parsed is UNREADABLE:
                return [UNREADABLE]
            if parsed is not _NOT_JSON:
                todo.append((parsed, depth + 1))
            continue
        if isinstance(item, SCALARS) or id(item) in seen:
            continue
        seen.add(id(item))
        nodes += 1
        if nodes > _MAX_SCANNED_NODES or depth > _MAX_DEPTH:
            return [UNREADABLE]
        children: Iterable[Any]
        if isinstance(item, Mapping):
            for key, label in item.items():
                if _is_label_key(key):
                    found.append(label if key == CLASSIFICATION else UNREADABLE)
            children = item.values()
        elif isinstance(item, _COLLECTIONS):
            children = cast("Iterable[Any]", item)
        elif isinstance(item, BaseModel):
            children = [getattr(item, f, None) for f in type(item).model_fields]
        elif dataclasses.is_dataclass(item):
            children = [getattr(item, f.name, None) for f in dataclasses.fields(item)]
        else:
            # LangChain Document, LlamaIndex node (``metadata``, ``node``),
            # any object's own attributes; never a property's code.
            children = [
                inspect.getattr_static(item, name, None)
                for name in ("metadata", "node")
            ]
            own = _own_attributes(item)
            if isinstance(own, dict):
                children += own.values()
        todo += [(child, depth + 1) for child in children]
    return found


def _json_in(item: str | bytes | bytearray) -> Any:
    """The JSON document a text result holds, :data:`_NOT_JSON` when it is
    plain text, :data:`UNREADABLE` when it is JSON no two readers agree on.

    Read by the one strict parser (a byte order mark first is dropped: a
    reader skips it). A key named twice (a label the ceiling and the model
    may read in different copies), a lone surrogate, a text too deep, too
    large or not UTF-8 is unreadable; so is a text shaped like JSON that is
    not strict JSON (a Python repr, JSON5, a NaN) but names a label. Any
    other text is plain text.
    """
    if isinstance(item, str):
        text: str | bytes = item.lstrip().removeprefix("\ufeff").lstrip()
    else:
        text = bytes(item).lstrip().removeprefix(_UTF8_BOM).lstrip()
    if text[:1] not in ("{", "[", b"{", b"["):
        return _NOT_JSON
    if len(text) <= _MAX_JSON_CHARS:
        try:
            return strict_json.loads(text, max_depth=_MAX_DEPTH)
        except strict_json.StrictJSONError as exc:
            if exc.problem not in _LENIENT_READS:
                return UNREADABLE
    # Not strict JSON (or too long to read), but shaped like it: a Python
    # repr of a list of dicts, JSON5 with a trailing comma, JSON with a NaN.
    # A reader that is not strict (the model, a UI, Python's json) may still
    # find a label in it, so one named there, escapes decoded, is unreadable.
    plain = text if isinstance(text, str) else text.decode("utf-8", "replace")
    unescaped = _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), plain)
    return UNREADABLE if CLASSIFICATION in fold(unescaped) else _NOT_JSON


def _own_attributes(item: Any) -> object:
    # The instance dict as the type's slot gives it: no __getattr__, no
    # property, no code of the result's class runs.
    try:
        return object.__getattribute__(item, "__dict__")
    except AttributeError:
        return None


def _checked_iter(check: Check, items: Iterator[Any]) -> Iterator[Any]:
    for item in items:
        check(item)
        yield item


def _checked_gen(check: Check, gen: Generator[Any, Any, Any]) -> Any:
    # ``yield from`` with every item checked before the caller sees it.
    try:
        item = next(gen)
        while True:
            try:
                check(item)
            except BaseException:
                gen.close()
                raise
            try:
                sent = yield item
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as exc:
                item = gen.throw(exc)
            else:
                item = gen.send(sent)
    except StopIteration as stop:
        return stop.value


async def _checked_agen(
    check: Check, agen: AsyncGenerator[Any, Any]
) -> AsyncGenerator[Any, Any]:
    try:
        item = await agen.__anext__()
        while True:
            try:
                check(item)
            except BaseException:
                await agen.aclose()
                raise
            try:
                sent = yield item
            except GeneratorExit:
                await agen.aclose()
                raise
            except BaseException as exc:
                item = await agen.athrow(exc)
            else:
                item = await agen.asend(sent)
    except StopAsyncIteration:
        return


async def _checked_await(check: Check, awaitable: Any) -> Any:
    return _checked(check, await awaitable)


def _checked(check: Check, result: Any) -> Any:
    """``result``, checked now or, for a lazy result, as it is produced."""
    if isinstance(result, types.GeneratorType):
        return _checked_gen(check, result)
    if isinstance(result, types.AsyncGeneratorType):
        return _checked_agen(check, result)
    if inspect.isawaitable(result):
        return _checked_await(check, result)
    if isinstance(result, Iterator):
        return _checked_iter(check, result)  # iter(), map(), a cursor...
    check(result)
    return result


def capped(
    fn: Any,
    check: Check,
    on_error: OnError | None = None,
    *,
    per_call: Callable[[], Check] | None = None,
) -> Any:
    """``fn`` with ``check`` run on every result it produces, of any shape.

    ``on_error`` is told of each exception the body raises (not those of
    ``check``), before it propagates: its message is tool output too.
    ``per_call``, if given, is called as each call starts and returns the
    check of that call's results (bound to the call: a lazy result checked
    later is still its own call's).
    """
    told = on_error if on_error is not None else _ignore
    bind = per_call if per_call is not None else (lambda: check)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def capped_gen(*args: Any, **kwargs: Any) -> Any:
            checking = bind()
            with _telling(told):
                return (yield from _checked_gen(checking, fn(*args, **kwargs)))

        return capped_gen
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def capped_agen(*args: Any, **kwargs: Any) -> Any:
            agen = _checked_agen(bind(), fn(*args, **kwargs))
            with _telling(told):
                try:
                    item = await agen.__anext__()
                    while True:
                        sent = yield item
                        item = await agen.asend(sent)
                except StopAsyncIteration:
                    return

        return capped_agen
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def capped_async(*args: Any, **kwargs: Any) -> Any:
            checking = bind()
            with _telling(told):
                result = await fn(*args, **kwargs)
            return _checked(checking, result)

        return capped_async

    @functools.wraps(fn)
    def capped_sync(*args: Any, **kwargs: Any) -> Any:
        checking = bind()
        with _telling(told):
            result = fn(*args, **kwargs)
        return _checked(checking, result)

    return capped_sync


OnError = Callable[[BaseException], None]


def _ignore(exc: BaseException) -> None:
    return None


@contextlib.contextmanager
def _telling(on_error: OnError) -> Iterator[None]:
    try:
        yield
    except GeneratorExit:
        raise
    except Exception as exc:
        from aiinvariants._errors import InvariantViolation

        if not isinstance(exc, InvariantViolation):
            on_error(exc)
        raise
