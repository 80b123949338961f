"""The one strict JSON parser: every JSON document the library trusts.

A policy file, a JWS header or payload, a JWK Set and an LLM request body
the guard rewrites are all read by :func:`loads`, with one set of rules:

- the input is UTF-8 (bytes) or a ``str`` that is valid Unicode; a byte
  order mark, a lone surrogate (raw or ``\\ud800`` escaped) or trailing data
  is refused;
- an object naming a key twice is refused at every depth: two parsers may
  keep different copies (the guard one, the provider or the app another).
  Keys equal but for case (``model`` and ``Model``, ``s`` and ``\\u017f``) count
  as one key: Go's ``encoding/json`` (Ollama, many gateways) matches a
  field in any case, under simple case folding, and keeps the last;
- ``NaN``, ``Infinity``, a number that overflows to infinity and a number
  literal longer than :data:`MAX_NUMBER_CHARS` are refused;
- input larger than ``max_bytes`` is refused before anything is built, and
  nesting deeper than ``max_depth`` once it is (the C parser bounds its own
  recursion).

A refusal is a :class:`StrictJSONError` (a ``ValueError``) with a stable
``problem`` code and the position; its message never quotes the document,
and it chains nothing (a ``JSONDecodeError`` carries the whole text).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "StrictJSONError",
    "loads",
    "loads_object",
]

#: Input larger than this (bytes of UTF-8) is refused unless a caller says so.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
#: Arrays and objects nested deeper than this are refused.
DEFAULT_MAX_DEPTH: Final = 128
#: A number literal longer than this is refused (CPython's own limit on int
#: conversion is 4300 digits; no document the library reads needs 400).
MAX_NUMBER_CHARS: Final = 400

_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', re.DOTALL)


class StrictJSONError(ValueError):
    """Why a document is not strict JSON.

    Attributes:
        problem: ``syntax``, ``duplicate_key``, ``constant``, ``number``,
            ``too_deep``, ``too_large``, ``bom``, ``surrogate`` or
            ``not_utf8``.
        line: 1-based line of the problem (0 when it has no position).
        column: 1-based column of the problem (0 when it has no position).
        key: the duplicated key for ``duplicate_key`` (callers decide
            whether it may be shown: it is never part of the message).
    """

    def __init__(
        self,
        problem: str,
        message: str,
        *,
        line: int = 0,
        column: int = 0,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.line = line
        self.column = column
        self.key = key


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__("duplicate key")
        self.key = key


class _Refused(ValueError):
    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs) or (
        not all(key.isascii() and key.islower() for key in result)
        and len({key.casefold() for key in result}) != len(result)
    ):
        seen: set[str] = set()
        for key, _ in pairs:
            if key.casefold() in seen:
                raise _Duplicate(key)
            seen.add(key.casefold())
    return result


def _constant(_: str) -> Any:
    raise _Refused("constant", "NaN and Infinity are not JSON")


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused("number", "a number literal is too long")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("number", "a number is too large (it overflows to infinity)")
    return value


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused("number", "a number literal is too long")
    return int(text)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _as_text(data: str | bytes | bytearray, max_bytes: int) -> str:
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise StrictJSONError("bom", "the document starts with a byte order mark")
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:
            bad = exc.start
        else:
            bad = -1
        if bad >= 0:
            line, column = _line_col(data, bad)
            raise StrictJSONError(
                "surrogate",
                f"the document holds a lone surrogate at line {line}, column {column}",
                line=line,
                column=column,
            )
        if size > max_bytes:
            raise StrictJSONError(
                "too_large", f"the document is over {max_bytes} bytes"
            )
        return data
    if len(data) > max_bytes:
        raise StrictJSONError("too_large", f"the document is over {max_bytes} bytes")
    if data.startswith(b"\xef\xbb\xbf"):
        raise StrictJSONError("bom", "the document starts with a byte order mark")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.start
    line = data[:bad].count(b"\n") + 1
    raise StrictJSONError("not_utf8", f"the document is not valid UTF-8 (line {line})")


def _check_depth(text: str, value: Any, max_depth: int) -> None:
    # Cheap first: a document with fewer brackets than the bound cannot pass
    # it. Else walk what was built (the C parser bounds its own recursion):
    # a walk of the containers costs less than rescanning the text.
    if text.count("{") + text.count("[") <= max_depth:
        return
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > max_depth:
            raise StrictJSONError(
                "too_deep",
                f"the document is nested too deeply (over {max_depth} levels)",
            )
        children = item.values() if isinstance(item, dict) else item
        todo.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def _has_lone_surrogate(value: Any) -> bool:
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            todo.extend(item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


def _duplicate_position(text: str, key: str) -> int:
    """Where the object naming ``key`` twice starts (the error path only)."""
    stack: list[tuple[int, set[str] | None]] = []
    expect_key = False
    for match in _TOKEN.finditer(text):
        part = match.group()
        if part in "{[":
            stack.append((match.start(), set() if part == "{" else None))
            expect_key = part == "{"
        elif part in "}]":
            stack.pop()
            expect_key = False
        elif part == ",":
            expect_key = bool(stack) and stack[-1][1] is not None
        elif part == ":":
            expect_key = False
        elif expect_key and part.startswith('"') and stack:
            start, keys = stack[-1]
            name = json.loads(part)
            if keys is not None and name.casefold() in keys and name == key:
                return start
            if keys is not None:
                keys.add(name.casefold())
    return 0


def loads(
    data: str | bytes | bytearray,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Any:
    """Parse ``data`` by the strict rules of this module.

    Args:
        data: the document, UTF-8 bytes or text.
        max_depth: deepest nesting of arrays and objects accepted.
        max_bytes: largest document accepted, in bytes of UTF-8.

    Raises:
        StrictJSONError: the document breaks a rule; ``problem`` says which.
    """
    text = _as_text(data, max_bytes)
    value, problem = _parse(text)
    if problem is not None:
        # raised here, outside the handler: a JSONDecodeError would be the
        # refusal's __context__, and it carries the whole document (.doc)
        raise problem
    if isinstance(value, dict | list):
        _check_depth(text, value, max_depth)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise StrictJSONError("surrogate", "the document holds a lone surrogate")
    return value


def _parse(text: str) -> tuple[Any, StrictJSONError | None]:
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except _Duplicate as exc:
        line, column = _line_col(text, _duplicate_position(text, exc.key))
        return None, StrictJSONError(
            "duplicate_key",
            f"the object starting at line {line}, column {column} names a key twice",
            line=line,
            column=column,
            key=exc.key,
        )
    except _Refused as exc:
        return None, StrictJSONError(exc.problem, str(exc))
    except json.JSONDecodeError as exc:
        return None, StrictJSONError(
            "syntax",
            f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            line=exc.lineno,
            column=exc.colno,
        )
    except RecursionError:
        return None, StrictJSONError("too_deep", "the document is nested too deeply")
    except ValueError:
        return None, StrictJSONError("number", "a number cannot be read")
    return value, None


def loads_object(
    data: str | bytes | bytearray,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """:func:`loads` for a document that must be an object (``problem``
    ``not_object`` otherwise)."""
    value = loads(data, max_depth=max_depth, max_bytes=max_bytes)
    if not isinstance(value, dict):
        raise StrictJSONError("not_object", "the document is not a JSON object")
    return value
