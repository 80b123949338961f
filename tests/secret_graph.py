"""Assert that no secret is reachable from an exception, by any edge.

An exception reaches far more than its message: ``args``, attributes (an
httpx error's ``request`` holds the body it tried to send), ``__cause__``,
``__context__``, ``__notes__``, the members of an exception group and, for
tools that log tracebacks with locals, the local variables of the frames it
passed through. :func:`assert_no_secret_reachable` walks that whole graph
and fails on the first place where a secret (raw, percent-encoded or
base64-encoded) appears.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

import aiinvariants

PACKAGE = str(Path(aiinvariants.__file__).resolve().parent)
MAX_NODES = 20_000


def _texts_of(obj: object) -> Iterator[str]:
    for render in (str, repr):
        try:
            yield render(obj)
        except Exception as exc:  # a broken __repr__ must not hide a leak
            yield f"<unrenderable {type(exc).__name__}>"


def _http_texts(obj: httpx.Request | httpx.Response) -> Iterator[object]:
    if isinstance(obj, httpx.Response):
        with contextlib.suppress(RuntimeError):  # built without a request
            yield obj.request
        yield obj.headers.raw
        if hasattr(obj, "_content"):
            yield obj.content
        return
    yield str(obj.url)
    yield obj.headers.raw
    try:
        yield obj.content
    except httpx.RequestNotRead:
        stream = obj.stream
        if isinstance(stream, httpx.ByteStream):
            yield b"".join(stream)


def _frames(tb: TracebackType | None) -> Iterator[Mapping[str, Any]]:
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.startswith(PACKAGE):
            yield dict(frame.f_locals)
        tb = tb.tb_next


def reachable(
    root: BaseException, *, frames: bool = False
) -> Iterator[tuple[str, str]]:
    """Every (path, text) reachable from ``root``."""
    stack: list[tuple[str, object]] = [("exc", root)]
    seen: set[int] = set()
    while stack:
        path, obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if len(seen) > MAX_NODES:
            raise AssertionError("exception graph too large to walk")
        if isinstance(obj, str):
            yield path, obj
            continue
        if isinstance(obj, bytes | bytearray):
            yield path, bytes(obj).decode("latin-1")
            continue
        if isinstance(obj, int | float | bool):
            continue
        for text in _texts_of(obj):
            yield path, text
        if isinstance(obj, BaseException):
            stack.append((path + ".args", obj.args))
            stack.append((path + ".__cause__", obj.__cause__))
            stack.append((path + ".__context__", obj.__context__))
            stack.append((path + ".__notes__", getattr(obj, "__notes__", None)))
            stack.append((path + ".exceptions", getattr(obj, "exceptions", None)))
            if frames:
                # As a traceback-with-locals logger prints them: each
                # local's repr (objects that hold a secret keep it hidden).
                for n, local in enumerate(_frames(obj.__traceback__)):
                    for name, value in local.items():
                        for text in _texts_of(value):
                            yield f"{path}.frame[{n}].{name}", text
        if isinstance(obj, httpx.Request | httpx.Response):
            for n, part in enumerate(_http_texts(obj)):
                stack.append((f"{path}.http[{n}]", part))
        if isinstance(obj, Mapping):
            for key, value in obj.items():
                stack.append((f"{path}[{key!r}]", key))
                stack.append((f"{path}[{key!r}]", value))
        elif isinstance(obj, list | tuple | set | frozenset):
            for n, item in enumerate(obj):
                stack.append((f"{path}[{n}]", item))
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict) and not isinstance(obj, type):
            for name, value in attributes.items():
                stack.append((f"{path}.{name}", value))
        for name in getattr(type(obj), "__slots__", ()):
            if isinstance(name, str) and hasattr(obj, name):
                stack.append((f"{path}.{name}", getattr(obj, name)))


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def assert_no_secret_reachable(
    exc: BaseException, *secrets: str | None, frames: bool = False
) -> None:
    """Fail when any of ``secrets`` is reachable from ``exc``.

    Args:
        exc: the exception as the caller receives it.
        secrets: the values that must not travel (None entries are ignored).
        frames: also walk the locals of the library's own traceback frames
            (what a traceback-with-locals logger would print).
    """
    wanted = [s for s in secrets if s]
    assert wanted, "no secret given: the check would be vacuous"
    forms = {form: s for s in wanted for form in _forms(s) if len(form) >= 6}
    for path, text in reachable(exc, frames=frames):
        for form in forms:
            if form in text:
                raise AssertionError(
                    f"a secret is reachable from the exception at {path}"
                )
