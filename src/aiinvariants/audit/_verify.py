"""Verifying an audit trail: every segment, every checkpoint, every link.

:func:`verify_trail` checks a set of segment files (a directory, a path
template's files, or files given one by one) and reports each problem it
finds, by file and line. :func:`verify_chain` is the one-file form.
Both stream each file in constant memory (a few hashes per segment).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aiinvariants._errors import PolicyError
from aiinvariants.audit._keys import public_keys, verify_note
from aiinvariants.audit._records import MAX_LINE_BYTES, check_record, is_hex

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "Anchor",
    "ChainReason",
    "ChainReport",
    "Problem",
    "SegmentReport",
    "TrailReport",
    "segment_files",
    "verify_chain",
    "verify_stream",
    "verify_trail",
]

ChainReason = Literal[
    "bad_json",
    "bad_hash",
    "unsupported_version",
    "broken_link",
    "bad_sequence",
    "wrong_chain",
    "missing_start",
    "after_final",
    "bad_signature",
    "unknown_key",
    "key_mismatch",
    "unsigned",
    "missing_segment",
    "link_mismatch",
    "truncated",
    "forked",
    "duplicate_chain",
    "anchor_mismatch",
    "not_closed",
    "unreadable",
    "no_segments",
]

Anchor = tuple[str | None, int, str]
"""``(chain id or None, seq, hash)``: a record's hash recorded elsewhere."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One violation (or, in :attr:`TrailReport.torn`, one torn line).

    Attributes:
        file: the segment file.
        line: 1-based line number in the file, when the problem has one.
        reason: a stable code (see ``docs/audit-format.md``).
        chain: the segment's chain id, when known.
        detail: a short explanation (never event content).
    """

    file: str
    line: int | None
    reason: str
    chain: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        tail = f" ({self.detail})" if self.detail else ""
        return f"{where}: {self.reason}{tail}"


@dataclass(slots=True)
class SegmentReport:
    """One segment as found.

    Attributes:
        file: its file. first_line: its start record's line.
        chain: its id. writer: host, name and pid of its writer.
        records, events, checkpoints: counts of valid records.
        key_id: the key that signed it (None: unsigned).
        closed: ends with a final checkpoint.
        continued: another segment links to it.
        unsigned_tail: records after its last signed record (not covered by
            any signature; zero when unsigned).
        head: ``(seq, hash)`` of its last valid record.
        predecessor: the chain id it continues, or None.
    """

    file: str
    first_line: int
    chain: str
    writer: Mapping[str, Any]
    key_id: str | None
    predecessor: Mapping[str, Any] | None
    records: int = 0
    events: int = 0
    checkpoints: int = 0
    closed: bool = False
    continued: bool = False
    unsigned_tail: int = 0
    head: tuple[int, str] = (0, "")


@dataclass(frozen=True, slots=True)
class TrailReport:
    """The result of :func:`verify_trail`; true when no violation was found.

    Attributes:
        ok: no problem found.
        files: the files checked.
        segments: every segment found.
        problems: the violations, in the order found.
        torn: torn last lines (a crash mid-write): reported, not violations.
        open_segments: chain ids of segments neither closed nor continued
            (a live writer, a crash not yet followed by a restart, or a cut
            tail that only an anchor or ``require_closed`` can tell apart).
        signatures_verified: public keys were given and every segment's
            signed records verified.
    """

    ok: bool
    files: tuple[str, ...]
    segments: tuple[SegmentReport, ...]
    problems: tuple[Problem, ...]
    torn: tuple[Problem, ...] = ()
    open_segments: tuple[str, ...] = ()
    signatures_verified: bool = False

    def __bool__(self) -> bool:
        return self.ok

    @property
    def events(self) -> int:
        """Event records in all segments."""
        return sum(s.events for s in self.segments)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of :func:`verify_chain`. True when the file is intact.

    Attributes:
        ok: no violation (a torn last line is not one).
        lines: valid lines (all complete lines when ``ok``).
        first_bad_line: 1-based line of the first violation.
        reason: its code.
        last_hash: the hash of the last valid record.
        signed: every segment in the file is signed.
        signatures_verified: a public key was given and all signatures held.
        recoveries: torn lines found (at the end, or recorded by a restart).
        segments: segments found in the file.
        events: event records found valid.
    """

    ok: bool
    lines: int
    first_bad_line: int | None = None
    reason: ChainReason | None = None
    last_hash: str | None = None
    signed: bool = False
    signatures_verified: bool = False
    recoveries: int = 0
    segments: int = 0
    events: int = 0

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class _Scan:
    keys: Mapping[str, Ed25519PublicKey]
    wanted: frozenset[int]
    require_signed: bool = False
    segments: list[SegmentReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    torn: list[Problem] = field(default_factory=list)
    seen: dict[tuple[str, int], str] = field(default_factory=dict)
    recovered: int = 0
    lines: dict[str, int] = field(default_factory=dict)


def _check_signed(
    scan: _Scan, seg: SegmentReport, record: dict[str, Any], where: str, number: int
) -> bool:
    kid = record["key_id"]
    if kid != seg.key_id:
        scan.problems.append(
            Problem(
                where,
                number,
                "key_mismatch",
                seg.chain,
                "another key than the start record's",
            )
        )
        return False
    if kid is None or not scan.keys:
        return True
    key = scan.keys.get(kid)
    if key is None:
        scan.problems.append(
            Problem(
                where, number, "unknown_key", seg.chain, f"key id {kid} is not trusted"
            )
        )
        return False
    if not verify_note(key, record["hash"], record["sig"]):
        scan.problems.append(Problem(where, number, "bad_signature", seg.chain))
        return False
    return True


class _LineSource(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def _scan_file(scan: _Scan, path: str) -> None:
    try:
        # Non-blocking: a FIFO or device planted under a segment's name must
        # be reported, not hang the verifier (or feed it endless bytes).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        scan.problems.append(Problem(path, None, "unreadable"))
        return
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        scan.problems.append(
            Problem(path, None, "unreadable", None, "not a regular file")
        )
        return
    with os.fdopen(fd, "rb") as stream:
        _scan_stream(scan, path, stream)


def _scan_stream(scan: _Scan, path: str, stream: _LineSource) -> None:
    seg: SegmentReport | None = None
    number = 0
    found = len(scan.segments)
    while True:
        try:
            raw = stream.readline(MAX_LINE_BYTES + 1)
        except OSError:
            scan.problems.append(Problem(path, number + 1, "unreadable"))
            break
        if not raw:
            break
        number += 1
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_LINE_BYTES:
                scan.problems.append(
                    Problem(path, number, "bad_json", None, "line too long")
                )
            else:
                scan.torn.append(
                    Problem(
                        path,
                        number,
                        "torn_line",
                        seg.chain if seg else None,
                        f"{len(raw)} bytes without a newline: a crash mid-write",
                    )
                )
            break
        record = check_record(raw)
        if isinstance(record, str):
            scan.problems.append(
                Problem(path, number, record, seg.chain if seg else None)
            )
            break
        if not _accept(scan, path, number, seg, record):
            break
        if record["type"] == "start":
            seg = scan.segments[-1]
        scan.lines[path] = number
    if len(scan.segments) == found and not any(p.file == path for p in scan.problems):
        # A writer puts its start record first: a file with none (empty, or
        # only a torn line) was cut down to nothing.
        scan.problems.append(
            Problem(path, 1, "missing_start", None, "no start record in the file")
        )


def _accept(
    scan: _Scan,
    path: str,
    number: int,
    seg: SegmentReport | None,
    record: dict[str, Any],
) -> bool:
    kind = record["type"]
    if kind == "start":
        seg = SegmentReport(
            file=path,
            first_line=number,
            chain=record["chain"],
            writer=record["writer"],
            key_id=record["key_id"],
            predecessor=record["prev_segment"],
        )
        if record["torn"] is not None:
            scan.recovered += 1
        if (scan.keys or scan.require_signed) and seg.key_id is None:
            scan.problems.append(
                Problem(
                    path, number, "unsigned", seg.chain, "the segment is not signed"
                )
            )
            return False
        if not _check_signed(scan, seg, record, path, number):
            return False
        scan.segments.append(seg)
    else:
        if seg is None:
            scan.problems.append(Problem(path, number, "missing_start"))
            return False
        problem = None
        if record["chain"] != seg.chain:
            problem = "wrong_chain"
        elif seg.closed:
            problem = "after_final"
        elif record["prev"] != seg.head[1]:
            problem = "broken_link"
        elif record["seq"] != seg.head[0] + 1:
            problem = "bad_sequence"
        if problem is not None:
            scan.problems.append(Problem(path, number, problem, seg.chain))
            return False
        if kind == "checkpoint":
            if not _check_signed(scan, seg, record, path, number):
                return False
            seg.checkpoints += 1
            seg.closed = record["final"]
        else:
            seg.events += 1
    seg.records += 1
    seg.head = (record["seq"], record["hash"])
    if kind == "event" or seg.key_id is None:
        seg.unsigned_tail = seg.unsigned_tail + 1 if seg.key_id is not None else 0
    else:
        seg.unsigned_tail = 0
    if record["seq"] in scan.wanted:
        scan.seen[(seg.chain, record["seq"])] = record["hash"]
    return True


def _check_links(scan: _Scan, partial: bool) -> list[str]:
    by_chain: dict[str, SegmentReport] = {}
    for seg in scan.segments:
        if seg.chain in by_chain:
            scan.problems.append(
                Problem(
                    seg.file,
                    seg.first_line,
                    "duplicate_chain",
                    seg.chain,
                    f"also in {by_chain[seg.chain].file}: a copied or replayed segment",
                )
            )
        else:
            by_chain[seg.chain] = seg
    successors: dict[str, list[SegmentReport]] = {}
    for seg in scan.segments:
        link = seg.predecessor
        if link is None:
            continue
        successors.setdefault(link["chain"], []).append(seg)
        pred = by_chain.get(link["chain"])
        if pred is None:
            if not partial:
                scan.problems.append(
                    Problem(
                        seg.file,
                        seg.first_line,
                        "missing_segment",
                        seg.chain,
                        f"continues segment {link['chain']}, which is not in the trail",
                    )
                )
            continue
        pred.continued = True
        if pred.records < link["size"]:
            reason, why = (
                "truncated",
                f"{pred.records} records, {link['size']} when continued",
            )
        elif pred.head != (link["size"], link["head"]):
            reason, why = "link_mismatch", "its head differs from the one continued"
        else:
            continue
        scan.problems.append(Problem(pred.file, None, reason, pred.chain, why))
    for chain, succ in successors.items():
        if len(succ) > 1:
            scan.problems.append(
                Problem(
                    succ[1].file,
                    succ[1].first_line,
                    "forked",
                    chain,
                    "two segments continue the same one",
                )
            )
    return [s.chain for s in scan.segments if not s.closed and not s.continued]


def _check_anchors(scan: _Scan, anchors: Sequence[Anchor]) -> None:
    for chain, seq, digest in anchors:
        hits = [
            h
            for (c, s), h in scan.seen.items()
            if s == seq and (chain is None or c == chain)
        ]
        if digest in hits:
            continue
        where = chain or "the trail"
        if hits:
            scan.problems.append(
                Problem(
                    where,
                    None,
                    "anchor_mismatch",
                    chain,
                    f"record {seq} has another hash",
                )
            )
        else:
            scan.problems.append(
                Problem(
                    where,
                    None,
                    "truncated",
                    chain,
                    f"no record {seq}: cut after the anchor",
                )
            )


def _anchors(anchors: Iterable[Any] | None) -> list[Anchor]:
    result: list[Anchor] = []
    for item in anchors or ():
        if isinstance(item, tuple) and len(item) == 2:
            item = (None, *item)
        if not (
            isinstance(item, tuple)
            and len(item) == 3
            and (item[0] is None or is_hex(item[0], 32))
            and type(item[1]) is int
            and item[1] >= 1
            and is_hex(item[2])
        ):
            raise PolicyError(
                "an anchor is (chain id or None, seq >= 1, 64-hex hash), or (seq, hash)"
            )
        result.append(item)
    return result


def segment_files(source: str | os.PathLike[str]) -> list[str]:
    """The segment files of ``source``: a file, a directory, or a path template.

    Raises:
        PolicyError: ``source`` names nothing that exists.
    """
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        # Every entry named like a segment: one that is not a regular file (a
        # link to /dev/null, a FIFO) is reported, not skipped.
        return sorted(str(p) for p in path.glob("*.jsonl") if not p.is_dir())
    if "{" in text:
        pattern = text.replace("{host}", "*").replace("{pid}", "*")
        return sorted(p for p in glob.glob(glob.escape(pattern).replace("[*]", "*")))
    if path.is_file():
        return [text]
    raise PolicyError(f"no audit trail at {text}: not a file, directory or template")


def verify_trail(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    public_key: Ed25519PublicKey | Iterable[Ed25519PublicKey] | None = None,
    anchors: Iterable[Any] | None = None,
    require_closed: bool = False,
    partial: bool = False,
    require_signed: bool = False,
) -> TrailReport:
    """Verify every segment of a trail, their checkpoints and their links.

    Args:
        sources: a segment file, a directory, a path template
            (``audit/{host}-{pid}.jsonl``), or several of those.
        public_key: trusted public keys (the old and the new one across a
            rotation; each is matched by key id). With keys, every segment
            must be signed by one of them; without, signatures are not
            checked and anyone able to rewrite the files could rebuild them.
        anchors: ``(chain id or None, seq, hash)`` records kept elsewhere; each
            must still be there with that hash (detects a cut tail).
        require_closed: every segment must end in a final checkpoint or be
            continued: use it once every writer has stopped.
        partial: links to segments outside ``sources`` are not violations.
        require_signed: every segment must be signed (``unsigned``
            otherwise), also without ``public_key``: set it when the trail's
            writers hold a signing key, so that stripping every signature
            (and recomputing the hashes) is not reported as a clean trail.

    Raises:
        PolicyError: a source does not exist, or a key or anchor is malformed.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files: list[str] = []
    for source in sources:
        files.extend(segment_files(source))
    files = list(dict.fromkeys(files))
    keys = public_keys(public_key)
    wanted = _anchors(anchors)
    scan = _Scan(
        keys=keys,
        wanted=frozenset(seq for _, seq, _ in wanted),
        require_signed=require_signed,
    )
    for path in files:
        _scan_file(scan, path)
    if not files:
        scan.problems.append(Problem(str(sources), None, "no_segments"))
    open_segments = _check_links(scan, partial)
    _check_anchors(scan, wanted)
    if require_closed:
        for seg in scan.segments:
            if seg.chain in open_segments:
                scan.problems.append(
                    Problem(
                        seg.file,
                        None,
                        "not_closed",
                        seg.chain,
                        "no final checkpoint and no successor",
                    )
                )
    return TrailReport(
        ok=not scan.problems,
        files=tuple(files),
        segments=tuple(scan.segments),
        problems=tuple(scan.problems),
        torn=tuple(scan.torn),
        open_segments=tuple(open_segments),
        signatures_verified=bool(keys) and not scan.problems,
    )


def verify_chain(
    path: str | os.PathLike[str],
    *,
    public_key: Ed25519PublicKey | Iterable[Ed25519PublicKey] | None = None,
    anchor: tuple[int, str] | tuple[str | None, int, str] | None = None,
) -> ChainReport:
    """Check one audit file: its segments, checkpoints and links between them.

    Links to segments in other files are not checked (see
    :func:`verify_trail` for a whole trail). A torn last line is counted in
    ``recoveries`` and is not a failure.

    Args:
        path: the file.
        public_key: the trusted key (or keys): every segment must be signed
            by it, and its start record and checkpoints must verify.
        anchor: ``(seq, hash)`` (or ``(chain, seq, hash)``) recorded elsewhere,
            e.g. from :attr:`JSONLSink.head`.
    """
    text = os.fspath(path)
    if not Path(text).is_file():
        return ChainReport(ok=False, lines=0, first_bad_line=1, reason="unreadable")
    try:
        stream = open(text, "rb")  # noqa: SIM115 - closed below, errors reported
    except OSError:
        return ChainReport(ok=False, lines=0, first_bad_line=1, reason="unreadable")
    with stream:
        return verify_stream(stream, name=text, public_key=public_key, anchor=anchor)


def verify_stream(
    stream: _LineSource,
    *,
    name: str = "<stream>",
    public_key: Ed25519PublicKey | Iterable[Ed25519PublicKey] | None = None,
    anchor: tuple[int, str] | tuple[str | None, int, str] | None = None,
) -> ChainReport:
    """:func:`verify_chain` over an open binary stream, read once.

    Reads with ``stream.readline(limit)`` only, so a caller can see every
    byte that is checked: the report summarises exactly the bytes verified
    (a file swapped or rewritten between two reads cannot show one content
    and verify another).
    """
    keys = public_keys(public_key)
    wanted = _anchors([anchor] if anchor is not None else None)
    scan = _Scan(keys=keys, wanted=frozenset(seq for _, seq, _ in wanted))
    text = name
    _scan_stream(scan, text, stream)
    _check_links(scan, partial=True)
    _check_anchors(scan, wanted)
    lines = scan.lines.get(text, 0)
    first = scan.problems[0] if scan.problems else None
    last = scan.segments[-1].head[1] if scan.segments else None
    signed = bool(scan.segments) and all(s.key_id for s in scan.segments)
    return ChainReport(
        ok=first is None,
        lines=lines,
        first_bad_line=None if first is None else (first.line or lines + 1),
        reason=None if first is None else first.reason,  # type: ignore[arg-type]
        last_hash=last,
        signed=signed,
        signatures_verified=signed and bool(keys) and first is None,
        recoveries=len(scan.torn) + scan.recovered,
        segments=len(scan.segments),
        events=sum(s.events for s in scan.segments),
    )
