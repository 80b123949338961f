"""A second verifier of the audit format, written from docs/audit-format.md alone.

It shares no code with ``aiinvariants.audit``: canonical JSON comes from the
independent ``rfc8785`` package, hashing from hashlib, signatures from
cryptography. Tests run it next to the library's verifier so the *format* is
checked, not only the library's code against itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ZEROS = "0" * 64
NOTE = b"aiinvariants-audit/v2 checkpoint\n"


def _number(text: str) -> int | float:
    # The spec: every number is an IEEE 754 double. Small integers stay int
    # (rfc8785 writes both alike); larger ones are read as the double.
    value = int(text)
    return value if abs(value) <= 2**53 - 1 else float(value)


def spec_key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class Segment:
    chain: str
    link: dict[str, Any] | None
    key_id: str | None
    count: int = 0
    last: str = ""
    final: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Result:
    problems: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for s in self.segments for e in s.events]


def _sig_ok(record: dict[str, Any], keys: dict[str, Ed25519PublicKey]) -> bool:
    key = keys.get(record["key_id"])
    if key is None:
        return False
    try:
        raw = base64.b64decode(record["sig"], validate=True)
        if base64.b64encode(raw).decode() != record["sig"]:
            return False  # not the canonical encoding (other padding bits)
        key.verify(raw, NOTE + record["hash"].encode() + b"\n")
    except (InvalidSignature, ValueError):
        return False
    return True


def _file(path: Path, keys: dict[str, Ed25519PublicKey], result: Result) -> None:
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines[-1]:
        result.torn.append(f"{path}:{len(lines)}")
    seg: Segment | None = None
    for number, raw in enumerate(lines[:-1], 1):
        where = f"{path}:{number}"
        try:
            record = json.loads(raw, parse_int=_number)
            canonical = rfc8785.dumps(record)
        except Exception:
            result.problems.append(f"{where} not JSON")
            return
        if canonical != raw or record.get("v") != 2:
            result.problems.append(f"{where} not canonical v2")
            return
        body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
        if hashlib.sha256(rfc8785.dumps(body)).hexdigest() != record.get("hash"):
            result.problems.append(f"{where} hash")
            return
        kind = record["type"]
        if kind == "start":
            if record["seq"] != 1 or record["prev"] != ZEROS:
                result.problems.append(f"{where} start")
                return
            seg = Segment(record["chain"], record["prev_segment"], record["key_id"])
            result.segments.append(seg)
        elif seg is None or seg.final or record["chain"] != seg.chain:
            result.problems.append(f"{where} outside a segment")
            return
        elif record["seq"] != seg.count + 1 or record["prev"] != seg.last:
            result.problems.append(f"{where} link")
            return
        signed = kind in ("start", "checkpoint") and bool(keys)
        if signed and (record["key_id"] != seg.key_id or not _sig_ok(record, keys)):
            result.problems.append(f"{where} signature")
            return
        if kind == "checkpoint":
            seg.final = record["final"]
        if kind == "event":
            seg.events.append(record["event"])
        seg.count += 1
        seg.last = record["hash"]


def spec_verify(files: list[Path], public_keys: list[Ed25519PublicKey] = ()) -> Result:
    """Check segment files as docs/audit-format.md says; collect problems."""
    keys = {spec_key_id(k): k for k in public_keys}
    result = Result()
    for path in files:
        _file(path, keys, result)
    chains = [s.chain for s in result.segments]
    if len(set(chains)) != len(chains):
        result.problems.append("a chain id appears twice")
    by_chain = {s.chain: s for s in result.segments}
    continued: list[str] = []
    for seg in result.segments:
        if keys and seg.key_id is None:
            result.problems.append(f"segment {seg.chain} unsigned")
        if seg.link is None:
            continue
        continued.append(seg.link["chain"])
        pred = by_chain.get(seg.link["chain"])
        if pred is None:
            result.problems.append(f"segment {seg.chain}: predecessor missing")
        elif (pred.count, pred.last) != (seg.link["size"], seg.link["head"]):
            result.problems.append(f"segment {pred.chain}: not as continued")
    if len(set(continued)) != len(continued):
        result.problems.append("a segment is continued twice")
    return result
