"""The audit file format, version 2: records, their bytes and their hashes.

See ``docs/audit-format.md`` for the specification. In short, every line of a
segment file is the RFC 8785 canonical JSON of one record followed by ``\\n``.
Every record has ``v`` (2), ``type`` (``start``, ``event`` or
``checkpoint``), ``chain`` (the segment's id), ``seq`` (1, 2, … within the
segment), ``prev`` (the previous record's ``hash``; 64 zeros for ``start``)
and ``hash``: the SHA-256 (hex) of the canonical JSON of the record without
its ``hash`` and ``sig`` members. ``start`` and ``checkpoint`` records also
carry ``key_id`` and ``sig`` (both null when the segment is unsigned).

Both the writer and the verifier use this module; the tests check it against
an independent verifier written from the specification alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from json.encoder import encode_basestring as _q
from typing import Any, Final, Literal

from aiinvariants.audit._canonical import (
    MAX_SAFE_INTEGER,
    canonical_json,
    canonical_number,
)
from aiinvariants.audit._events import AuditEvent

__all__ = [
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "MAX_LINE_BYTES",
    "RecordProblem",
    "check_record",
    "event_json",
    "event_line",
    "record_hash",
    "signed_line",
]

FORMAT_VERSION: Final = 2
GENESIS_HASH: Final = "0" * 64
"""The ``prev`` of the start record of every segment."""

MAX_LINE_BYTES: Final = 1 << 20
"""Longest line the writer produces and the verifier reads (1 MiB)."""

RecordProblem = Literal["bad_json", "bad_hash", "unsupported_version"]

_HEX: Final = frozenset("0123456789abcdef")

_COMMON: Final = frozenset(("v", "type", "chain", "seq", "prev", "hash"))
_KEYS: Final = {
    "event": _COMMON | {"event"},
    "start": _COMMON | {"key_id", "sig", "time", "writer", "prev_segment", "torn"},
    "checkpoint": _COMMON | {"key_id", "sig", "time", "final"},
}


def is_hex(value: object, length: int = 64) -> bool:
    """True when ``value`` is ``length`` lower-case hex digits."""
    return isinstance(value, str) and len(value) == length and _HEX.issuperset(value)


def _detail(value: object) -> str:
    kind = type(value)
    if kind is str:
        return _q(value)  # type: ignore[arg-type]
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        # AuditEvent keeps integers within ±(2**53 - 1): written as is.
        return int.__repr__(value)
    return canonical_number(value)  # type: ignore[arg-type]


def _order(name: str) -> bytes:
    return name.encode("utf-16-be", "surrogatepass")


def _sorted_names(names: Iterable[str]) -> list[str]:
    ordered = sorted(names)
    # Code point order is UTF-16 order unless a name holds a character
    # above U+FFFF (a surrogate pair sorts before U+E000..U+FFFF).
    if "".join(ordered).isascii():
        return ordered
    return sorted(ordered, key=_order)


def event_json(event: AuditEvent) -> bytes:
    """``canonical_json(event.to_dict())``, written directly for speed.

    The event's own member names are ASCII, so their sorted order is fixed;
    detail names are sorted by UTF-16 code units. A test checks the equality
    with :func:`canonical_json`.

    Raises:
        ValueError: a string holds a lone surrogate, or a number has no
            canonical form.
    """
    details = event.details
    if details:
        detail_json = (
            "{"
            + ",".join(
                _q(key) + ":" + _detail(details[key]) for key in _sorted_names(details)
            )
            + "}"
        )
    else:
        detail_json = "{}"
    resource = "null" if event.resource is None else _q(event.resource)
    text = (
        f'{{"correlation_id":{_q(event.correlation_id)},'
        f'"decision":{_q(event.decision)},"details":{detail_json},'
        f'"id":{_q(event.id)},"invariant":{_q(event.invariant)},'
        f'"policy_hash":{_q(event.policy_hash)},'
        f'"reason":{_q(event.reason)},"resource":{resource},'
        f'"subject":{_q(event.subject)},"time":{_q(event.time)}}}'
    )
    return text.encode("utf-8")


def event_line(chain: str, event: bytes, prev: str, seq: int) -> tuple[bytes, str]:
    """The line and hash of an event record (``event`` is its canonical JSON).

    Built by concatenation (member names in canonical order), equal to
    ``canonical_json`` of the record: a test checks it.
    """
    head = b'{"chain":"%s","event":' % chain.encode()
    tail = b'"prev":"%s","seq":%d,"type":"event","v":2}' % (prev.encode(), seq)
    hasher = hashlib.sha256(head)
    hasher.update(event)
    hasher.update(b",")
    hasher.update(tail)
    digest = hasher.hexdigest()
    line = b"".join((head, event, b',"hash":"', digest.encode(), b'",', tail, b"\n"))
    return line, digest


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record`` without hash and sig."""
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return hashlib.sha256(_fast_canonical(body) or canonical_json(body)).hexdigest()


def signed_line(record: dict[str, Any], sign: Any = None) -> tuple[bytes, str]:
    """Hash ``record`` (a start or checkpoint), sign it, and return its line.

    ``sign(digest) -> str`` makes the signature; without it ``sig`` is null.
    """
    digest = record_hash(record)
    full = dict(record, hash=digest, sig=None if sign is None else sign(digest))
    return canonical_json(full) + b"\n", digest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _shape_ok(record: dict[str, Any]) -> bool:
    kind = record.get("type")
    expected = _KEYS.get(kind) if isinstance(kind, str) else None
    if expected is None or record.keys() != expected:
        return False
    seq = record["seq"]
    if type(seq) is not int or seq < 1:
        return False
    if not (is_hex(record["chain"], 32) and is_hex(record["prev"])):
        return False
    if not isinstance(record["hash"], str):
        return False
    if kind == "event":
        return _event_ok(record["event"])
    key, sig = record["key_id"], record["sig"]
    if not (key is None or is_hex(key, 16)) or not (
        sig is None or isinstance(sig, str)
    ):
        return False
    if (key is None) != (sig is None) or not isinstance(record["time"], str):
        return False
    if kind == "checkpoint":
        return isinstance(record["final"], bool)
    return _start_ok(record)


_EVENT_TEXT: Final = (
    "correlation_id",
    "decision",
    "id",
    "invariant",
    "policy_hash",
    "reason",
    "subject",
    "time",
)
_EVENT_KEYS: Final = frozenset((*_EVENT_TEXT, "details", "resource"))


def _event_ok(event: object) -> bool:
    # Exactly the members docs/audit-format.md lists: a forged record with
    # extra members ("approved_by") or nested details is not an event.
    if not isinstance(event, dict) or event.keys() != _EVENT_KEYS:
        return False
    if not all(isinstance(event[name], str) for name in _EVENT_TEXT):
        return False
    resource, details = event["resource"], event["details"]
    if not (resource is None or isinstance(resource, str)):
        return False
    return isinstance(details, dict) and all(
        value is None or isinstance(value, (str, int, float))
        for value in details.values()
    )


def _start_ok(record: dict[str, Any]) -> bool:
    writer, link, torn = record["writer"], record["prev_segment"], record["torn"]
    if record["seq"] != 1 or record["prev"] != GENESIS_HASH:
        return False
    if not (
        isinstance(writer, dict)
        and writer.keys() == {"host", "name", "pid"}
        and isinstance(writer["host"], str)
        and isinstance(writer["name"], str)
        and type(writer["pid"]) is int
    ):
        return False
    if link is not None and not (
        isinstance(link, dict)
        and link.keys() == {"chain", "size", "head"}
        and is_hex(link["chain"], 32)
        and type(link["size"]) is int
        and link["size"] >= 1
        and is_hex(link["head"])
    ):
        return False
    return torn is None or (
        isinstance(torn, dict)
        and torn.keys() == {"bytes", "sha256"}
        and type(torn["bytes"]) is int
        and is_hex(torn["sha256"], 16)
    )


_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _plain(value: object) -> bool:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is float:
        # json writes repr(); fine when that is already the ECMAScript form.
        return float.__repr__(value) == canonical_number(value)  # type: ignore[arg-type]
    return kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER  # type: ignore[operator]


def _fast_canonical(record: dict[str, Any]) -> bytes | None:
    """The canonical bytes of a typical record, via the C encoder, or None.

    ``json``'s encoder writes the same bytes as RFC 8785 when every member
    name is ASCII (code point order is then UTF-16 order), every number is
    an integer a double holds exactly, and every float's ``repr`` is its
    ECMAScript form (``0.5``, not ``1e-07``): the common case, checked here.
    Anything else takes :func:`canonical_json`.
    """
    for name, value in record.items():
        if name == "event" and type(value) is dict:
            for field, inner in value.items():
                if field == "details" and type(inner) is dict:
                    if not "".join(inner).isascii():
                        return None
                    if not all(_plain(v) for v in inner.values()):
                        return None
                elif not _plain(inner):
                    return None
            if not "".join(value).isascii():
                return None
        elif not _plain(value):
            return None
    if not "".join(record).isascii():
        return None
    return _dumps(record).encode("utf-8")


def check_record(line: bytes) -> dict[str, Any] | RecordProblem:
    """Parse one complete line (with its newline) and check it on its own.

    Returns the record, or why it is invalid: ``unsupported_version`` (not a
    version 2 record), ``bad_json`` (not a well-formed record, or not its
    exact canonical bytes) or ``bad_hash`` (the hash does not match).
    """
    try:
        # A duplicated member name needs no hook: json keeps the last one,
        # so the re-serialised bytes below come out shorter than the line.
        record = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return "bad_json"
    if not isinstance(record, dict):
        return "bad_json"
    if record.get("v") != FORMAT_VERSION or type(record.get("v")) is not int:
        return "unsupported_version"
    if not _shape_ok(record):
        return "bad_json"
    try:
        exact = (_fast_canonical(record) or canonical_json(record)) + b"\n"
    except (ValueError, TypeError):
        return "bad_json"
    if exact != line:
        # Same meaning, other bytes (1e0 for 1, an escaped letter, spaces):
        # not what the writer wrote.
        return "bad_json"
    if _hash_of_line(record, exact) != record["hash"]:
        return "bad_hash"
    return record


def _hash_of_line(record: dict[str, Any], exact: bytes) -> str:
    if record["type"] != "event":
        return record_hash(record)
    # Canonical JSON of an object is its sorted members joined, so the body
    # is the line without its "hash" member (never the last one: "v" is).
    # The top-level member follows the whole event: the last occurrence.
    member = b'"hash":"%s",' % record["hash"].encode()
    at = exact.rfind(member)
    if at < 0:
        return record_hash(record)
    body = exact[:at] + exact[at + len(member) : -1]
    return hashlib.sha256(body).hexdigest()
