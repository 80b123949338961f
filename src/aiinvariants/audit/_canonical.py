"""RFC 8785 JSON Canonicalization (JCS), the byte form every audit record takes.

The canonical form of a JSON value is unique, so two implementations in any
language produce the same bytes, and a hash over them is reproducible:

* objects: members sorted by their names compared as UTF-16 code units, no
  whitespace, ``,`` and ``:`` separators, no duplicate names;
* strings: UTF-8, escaping only ``"``, ``\\`` and the control characters
  below U+0020 (``\\b \\t \\n \\f \\r`` by name, the others as ``\\u00xx`` in
  lower-case hex); a lone surrogate has no canonical form and is refused;
* numbers: IEEE 754 doubles written as ECMAScript's ``Number.prototype.toString``
  writes them (shortest round-trip digits; ``1e+21`` and ``1e-7`` switch to
  exponent form; ``-0`` is ``0``); NaN and infinities are refused, and so
  are integers a double cannot hold exactly;
* ``true``, ``false``, ``null`` as written.

This module depends on nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring as _quote_str
from typing import Final

__all__ = ["MAX_SAFE_INTEGER", "canonical_json", "canonical_number", "quote"]

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer an IEEE 754 double, hence every JSON reader, holds exactly."""

_MAX_DEPTH: Final = 64


def quote(value: str) -> str:
    """``value`` as a canonical JSON string literal (still a Python ``str``).

    The caller encodes the result as UTF-8; a lone surrogate then raises
    :class:`UnicodeEncodeError` (a :class:`ValueError`).
    """
    # The C encoder escapes exactly '"', '\\' and U+0000..U+001F, with the short
    # forms \b \t \n \f \r and lower-case \u00xx otherwise: the JCS rules.
    return _quote_str(value)


def canonical_number(value: int | float) -> str:
    """A number in the form ECMAScript's ``Number.prototype.toString`` gives.

    Raises:
        ValueError: NaN, an infinity, or an integer beyond ±(2**53 - 1).
    """
    if isinstance(value, bool):
        raise TypeError("a bool is not a JSON number")
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int.__repr__(value)
        # A larger integer is fine when it is how a double is written (the
        # writer's 2.0**60, read back as an int): then it is canonical as is.
        with contextlib.suppress(OverflowError):
            text = int.__repr__(value)
            if canonical_number(float(value)) == text:
                return text
        raise ValueError(
            "integers beyond ±(2**53 - 1) have no exact JSON form; record them "
            "as strings"
        )
    if not math.isfinite(value):
        raise ValueError("NaN and infinities have no JSON form")
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = float.__repr__(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    # Python's repr and ECMAScript both pick the shortest digit string that
    # reads back as the same double; only the layout differs. Normalise to
    # digits d1..dk and n, the value being 0.d1..dk * 10**n.
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        text = digits + "0" * (point - k)
    elif 0 < point <= 21:
        text = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        power = point - 1
        text = (
            digits[0]
            + ("." + digits[1:] if k > 1 else "")
            + ("e+" if power >= 0 else "e-")
            + str(abs(power))
        )
    return sign + text


def _utf16_order(name: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as UTF-16 code units do.
    return name.encode("utf-16-be", "surrogatepass")


def _encode(value: object, out: list[str], depth: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(quote(value))
    elif isinstance(value, (int, float)):
        out.append(canonical_number(value))
    elif depth >= _MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {_MAX_DEPTH} levels")
    elif isinstance(value, Mapping):
        names = list(value)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"JSON object names must be str, not {type(name)}")
        out.append("{")
        for index, name in enumerate(sorted(names, key=_utf16_order)):
            if index:
                out.append(",")
            out.append(quote(name))
            out.append(":")
            _encode(value[name], out, depth + 1)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} has no JSON form")


def canonical_json(value: object) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value``.

    ``value`` is built from dicts (str keys), lists/tuples, str, int, float,
    bool and None.

    Raises:
        ValueError: a value has no canonical form (NaN, an infinity, an
            integer beyond ±(2**53 - 1), a lone surrogate, nesting deeper
            than 64).
        TypeError: a value is not JSON.
    """
    out: list[str] = []
    _encode(value, out, 0)
    return "".join(out).encode("utf-8")
