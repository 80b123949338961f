"""The tamper-evident audit file: a hash-chained, optionally signed JSON Lines log.

Each line of the file is one record::

    {"event":{…},"prev":"<64 hex>","seq":1,"hash":"<64 hex>","sig":"<base64>"}

* ``seq`` counts lines from 1;
* ``prev`` is the ``hash`` of the line before (64 zeros on the first line);
* ``hash`` is the SHA-256, in hex, of the canonical JSON of
  ``{"event": …, "prev": …, "seq": …}`` (keys sorted, no whitespace,
  non-ASCII escaped, so the bytes are ASCII and therefore UTF-8);
* ``sig``, present when the writer has a signing key, is the standard base64
  of the Ed25519 signature of the ASCII bytes of ``hash``.

A line is exactly the canonical JSON above with ``hash`` (and ``sig``)
appended, so a verifier can demand byte-for-byte equality and any change to a
line, even one that keeps its JSON meaning, is detected.

cryptography is imported only when a key is loaded or a signature is made or
checked, which keeps ``import aiinvariants`` fast.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from aiinvariants._internal.closing import Closing
from aiinvariants.audit.events import AuditEvent
from aiinvariants.errors import PolicyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "GENESIS_HASH",
    "ChainReason",
    "ChainReport",
    "JSONLSink",
    "load_signing_key",
    "verify_chain",
    "verify_stream",
]

GENESIS_HASH: Final = "0" * 64
"""The ``prev`` of the first line of every chain."""

MAX_LINE_BYTES: Final = 1 << 20
"""Longest line the writer produces and the verifier reads (1 MiB)."""

ChainReason = Literal[
    "bad_json",
    "bad_hash",
    "broken_link",
    "bad_sequence",
    "bad_signature",
    "missing_signature",
    "partial_tail",
    "unreadable",
    "anchor_mismatch",
    "truncated",
]

_health = logging.getLogger("aiinvariants.audit.health")

_KEYS: Final = frozenset(("seq", "prev", "event", "hash"))
_SIGNED_KEYS: Final = frozenset(("seq", "prev", "event", "hash", "sig"))
_HEX: Final = frozenset("0123456789abcdef")


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")


def _scalar_json(value: object) -> str:
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value)  # finite: AuditEvent refuses the others
    raise TypeError(f"not a scalar: {type(value).__name__}")


def _event_json(event: AuditEvent) -> bytes:
    """``_canonical(event.to_dict())``, four times faster.

    ``json.dumps`` builds a new encoder on every call, which dominates the
    cost of a small fixed-shape record; this writes the same bytes directly
    (a property test checks the equality).
    """
    details = event.details
    if details:
        detail_json = (
            "{"
            + ",".join(
                _quote(key) + ":" + _scalar_json(details[key])
                for key in sorted(details)
            )
            + "}"
        )
    else:
        detail_json = "{}"
    resource = "null" if event.resource is None else _quote(event.resource)
    text = (
        f'{{"correlation_id":{_quote(event.correlation_id)},'
        f'"decision":{_quote(event.decision)},"details":{detail_json},'
        f'"id":{_quote(event.id)},"invariant":{_quote(event.invariant)},'
        f'"policy_hash":{_quote(event.policy_hash)},'
        f'"reason":{_quote(event.reason)},"resource":{resource},'
        f'"subject":{_quote(event.subject)},"time":{_quote(event.time)}}}'
    )
    return text.encode("ascii")


def _body(event_json: bytes, prev: str, seq: int) -> bytes:
    # Equal to _canonical({"event": e, "prev": prev, "seq": seq}) (keys in
    # sorted order), built by concatenation so the event is serialised once
    # and outside the writer's lock. A test checks the equality.
    return b'{"event":%s,"prev":"%s","seq":%d}' % (event_json, prev.encode(), seq)


def _line(body: bytes, digest: str, sig: str | None) -> bytes:
    tail = b',"hash":"%s"' % digest.encode()
    if sig is not None:
        tail += b',"sig":"%s"' % sig.encode()
    return body[:-1] + tail + b"}\n"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


# -- keys --------------------------------------------------------------------


def load_signing_key(value: str | bytes) -> Ed25519PrivateKey:
    """Load an Ed25519 private key for signing the audit chain.

    Accepts a PEM ``PRIVATE KEY`` (PKCS#8, unencrypted) or the base64 /
    base64url encoding (padding optional) of the raw 32-byte seed, the form
    that fits in an environment variable.

    Raises:
        PolicyError: the value is not such a key. The message never contains
            any part of the value, and the error is raised without a cause or
            context that could carry it.
    """
    if isinstance(value, str):
        data = value.strip().encode("utf-8", "surrogateescape")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value).strip()
    else:
        raise PolicyError(
            f"an audit signing key must be str or bytes, not {type(value).__name__}"
        )
    if not data:
        raise PolicyError("the audit signing key is empty")
    problem: str | None = None
    key: object = None
    if data.startswith(b"-----BEGIN"):
        key, problem = _load_pem(data)
    else:
        key, problem = _load_seed(data)
    # Raised here, outside any except block, so neither __cause__ nor
    # __context__ can carry a library exception that quotes the input.
    if problem is not None:
        raise PolicyError(problem)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not isinstance(key, Ed25519PrivateKey):
        raise PolicyError(
            f"the audit signing key is a {type(key).__name__}, not an Ed25519 key"
        )
    return key


def _load_pem(data: bytes) -> tuple[object, str | None]:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if b"ENCRYPTED" in data.split(b"\n", 1)[0]:
        return None, "encrypted PEM audit signing keys are not supported"
    try:
        return load_pem_private_key(data, password=None), None
    except (ValueError, TypeError):
        return None, "the audit signing key is not a valid unencrypted PEM key"
    except Exception:  # e.g. UnsupportedAlgorithm; never re-raised
        return None, "the audit signing key is not a supported PEM key"


def _load_seed(data: bytes) -> tuple[object, str | None]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = data.translate(None, b" \t\r\n").replace(b"-", b"+").replace(b"_", b"/")
    text += b"=" * (-len(text) % 4)
    try:
        seed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None, (
            "the audit signing key is neither PEM nor base64/base64url of a "
            "32-byte Ed25519 seed"
        )
    if len(seed) != 32:
        return None, (
            f"the audit signing key decodes to {len(seed)} bytes; an Ed25519 "
            "seed has 32"
        )
    return Ed25519PrivateKey.from_private_bytes(seed), None


def _sign(key: Ed25519PrivateKey, digest: str) -> str:
    return base64.b64encode(key.sign(digest.encode("ascii"))).decode("ascii")


# -- the writer --------------------------------------------------------------


def _last_newline(fd: int, end: int, start: int) -> int:
    """Offset of the last ``\\n`` in ``[start, end)``, or -1."""
    chunk = 64 * 1024
    pos = end
    while pos > start:
        lo = max(start, pos - chunk)
        found = os.pread(fd, pos - lo, lo).rfind(b"\n")
        if found >= 0:
            return lo + found
        pos = lo
    return -1


class JSONLSink(Closing):
    """Append audit events to a hash-chained, optionally signed JSON Lines file.

    Every event becomes one line, written with a single ``os.write`` on a file
    opened with ``O_APPEND``: a crash can lose at most the line being written,
    never corrupt an earlier one. The sink resumes an existing chain; if the
    file ends with a partial line (a crash mid-write), the partial bytes are
    cut off and a recovery record (invariant ``I13``, decision ``flag``,
    reason ``partial_line_truncated``) is appended, so the loss stays visible
    in the chain.

    Only one writer may append to a chain: a second one would fork it. The
    sink holds an exclusive ``flock`` on the file (POSIX; advisory, so it
    stops cooperating writers such as a second worker process of the same
    app, not an attacker with write access; for that, see signatures and
    anchoring in ``docs/audit.md``).

    Args:
        path: the audit file; created (mode 0600) when missing.
        signing_key: signs each line's hash, so that someone who can rewrite
            the file but does not hold the key cannot rebuild a valid chain
            after tampering with it.
        fsync: flush each line to stable storage before ``write`` returns,
            so a power loss cannot lose a recorded decision (slower).

    Raises:
        PolicyError: another writer holds the file, the file cannot be
            opened, its last complete line is not a valid chain record, or
            it is signed and no ``signing_key`` was given.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        signing_key: Ed25519PrivateKey | None = None,
        fsync: bool = False,
    ) -> None:
        if signing_key is not None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import (
                Ed25519PrivateKey,
            )

            if not isinstance(signing_key, Ed25519PrivateKey):
                raise PolicyError(
                    "signing_key must be an Ed25519PrivateKey, not "
                    f"{type(signing_key).__name__}; see load_signing_key()"
                )
        self._path = Path(path)
        self._key = signing_key
        self._fsync = bool(fsync)
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        self._fd = self._open()
        try:
            self._seq, self._prev, self._size = self._resume()
        except BaseException:
            fd, self._fd = self._fd, -1
            os.close(fd)
            raise

    # -- opening -----------------------------------------------------------

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        existed = self._path.exists()
        try:
            fd = os.open(self._path, flags, 0o600)
        except OSError as exc:
            raise PolicyError(
                f"cannot open the audit file {self._path} ({exc.strerror})"
            ) from None
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise PolicyError(
                    f"another writer holds the audit file {self._path}; two "
                    "writers would fork its hash chain (give each process its "
                    "own file)"
                ) from None
        if self._fsync and not existed:
            self._sync_directory()
        return fd

    def _sync_directory(self) -> None:
        try:
            dir_fd = os.open(self._path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def _resume(self) -> tuple[int, str, int]:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0, GENESIS_HASH, 0
        newline = _last_newline(self._fd, size, max(0, size - MAX_LINE_BYTES - 1))
        complete_end = newline + 1
        if newline < 0 and size > MAX_LINE_BYTES:
            raise PolicyError(
                f"the audit file {self._path} does not end in a chain record; "
                "run verify_chain() on it and start a new file"
            )
        seq, prev = 0, GENESIS_HASH
        if complete_end > 0:
            window = max(0, complete_end - 1 - MAX_LINE_BYTES - 1)
            start = _last_newline(self._fd, complete_end - 1, window)
            if start < 0 and window > 0:
                raise PolicyError(
                    f"the last line of the audit file {self._path} is longer "
                    "than any chain record; run verify_chain() on it and start "
                    "a new file"
                )
            last = os.pread(self._fd, complete_end - (start + 1), start + 1)
            seq, prev = self._parse_last(last)
        partial = size - complete_end
        if partial:
            self._recover(seq, prev, complete_end, partial)
            return self._seq, self._prev, self._size
        return seq, prev, size

    def _parse_last(self, line: bytes) -> tuple[int, str]:
        record = _check_record(line)
        if isinstance(record, str):
            raise PolicyError(
                f"the last line of the audit file {self._path} is not a valid "
                f"chain record ({record}); run verify_chain() on it and start "
                "a new file"
            )
        seq: int = record["seq"]
        digest: str = record["hash"]
        if "sig" in record and self._key is None:
            # Going on unsigned would silently downgrade the chain.
            raise PolicyError(
                f"the audit file {self._path} is signed; open it with its "
                "signing key, or start a new file"
            )
        if "sig" not in record and self._key is not None:
            _health.warning(
                "audit file %s: signatures start at seq %d; verify_chain() "
                "with a public key will report the earlier lines as "
                "missing_signature (start a new file to avoid this)",
                self._path,
                seq + 1,
            )
        return seq, digest

    def _recover(self, seq: int, prev: str, complete_end: int, partial: int) -> None:
        lost = os.pread(self._fd, partial, complete_end)
        os.ftruncate(self._fd, complete_end)
        self._seq, self._prev, self._size = seq, prev, complete_end
        event = AuditEvent(
            invariant="I13",
            decision="flag",
            reason="partial_line_truncated",
            subject="aiinvariants",
            details={
                "bytes": partial,
                "sha256": hashlib.sha256(lost).hexdigest()[:16],
            },
        )
        _health.warning(
            "audit file %s ended with a partial line (%d bytes, likely a crash "
            "mid-write); truncated it and recorded the loss at seq %d",
            self._path,
            partial,
            seq + 1,
        )
        self.write(event)

    # -- writing -----------------------------------------------------------

    @property
    def path(self) -> Path:
        """The audit file."""
        return self._path

    @property
    def signed(self) -> bool:
        """True when each line is signed."""
        return self._key is not None

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last line written: anchor it elsewhere.

        Copy it periodically to a place the log's writer cannot change (a
        ticket, another system's log, a transparency log); pass it back as
        ``verify_chain(..., anchor=head)`` to detect truncation of the tail.
        """
        with self._lock:
            return self._seq, self._prev

    def write(self, event: AuditEvent) -> None:
        """Append ``event`` as the next line of the chain.

        Raises:
            PolicyError: the sink is closed, used in a forked child, or the
                event is too large for a line.
            OSError: the line could not be written (disk full…); the chain is
                left as it was before the call.
        """
        event_json = _event_json(event)
        if len(event_json) > MAX_LINE_BYTES - 512:
            raise PolicyError(
                f"audit event is {len(event_json)} bytes; a line holds at most "
                f"{MAX_LINE_BYTES}"
            )
        with self._lock:
            if self._closed:
                raise PolicyError(f"the audit file {self._path} is closed")
            if os.getpid() != self._pid:
                # A forked child shares the fd and the flock with its parent;
                # both appending would fork the chain.
                raise PolicyError(
                    "JSONLSink cannot be used in a forked child; open a new "
                    "sink (on another file) in the child"
                )
            seq = self._seq + 1
            body = _body(event_json, self._prev, seq)
            digest = hashlib.sha256(body).hexdigest()
            sig = None if self._key is None else _sign(self._key, digest)
            line = _line(body, digest, sig)
            self._append(line)
            self._seq = seq
            self._prev = digest

    def _append(self, line: bytes) -> None:
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"short write to the audit file {self._path}")
            if self._fsync:
                _datasync(self._fd)
        except BaseException:
            # Cut off whatever part of the line reached the file, so the next
            # line still follows a complete one.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                self._closed = True  # the chain cannot continue safely
            raise
        self._size += len(line)

    def __del__(self) -> None:
        # Release the flock even if the owner forgot close().
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            self._fd = -1
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """Release the lock and close the file. Idempotent."""
        with self._lock:
            if self._closed and self._fd < 0:
                return
            self._closed = True
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __repr__(self) -> str:
        return (
            f"JSONLSink(path={str(self._path)!r}, signed={self._key is not None}, "
            f"fsync={self._fsync})"
        )


_datasync = getattr(os, "fdatasync", os.fsync)


# -- the verifier ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of :func:`verify_chain`. True when the chain is intact.

    Attributes:
        ok: every complete line is a valid link, no partial line follows,
            and (with a public key) every line is validly signed.
        lines: complete lines found valid (all of them when ``ok``; those
            before ``first_bad_line`` otherwise).
        first_bad_line: 1-based number of the first line that failed.
        reason: why it failed: ``bad_json``, ``bad_hash``, ``broken_link``,
            ``bad_sequence``, ``bad_signature``, ``missing_signature``,
            ``partial_tail``, ``unreadable``, and with an ``anchor``,
            ``anchor_mismatch`` or ``truncated``.
        last_hash: the hash of the last valid line (``None`` when none).
        signed: every valid line carries a signature (they were checked only
            when ``signatures_verified``).
        signatures_verified: a public key was given and every valid line's
            signature matched it.
        recoveries: recovery records found (each marks a partial line lost
            in a crash and cut off when the writer reopened the file).
    """

    ok: bool
    lines: int
    first_bad_line: int | None = None
    reason: ChainReason | None = None
    last_hash: str | None = None
    signed: bool = False
    signatures_verified: bool = False
    recoveries: int = 0

    def __bool__(self) -> bool:
        return self.ok


def _check_record(line: bytes) -> dict[str, Any] | Literal["bad_json", "bad_hash"]:
    """Parse one complete line (with its newline) and check it on its own.

    Returns the record, or the reason it is invalid. Checks structure, the
    hash over ``seq``/``prev``/``event`` and that the line is byte-for-byte
    what the writer would have produced.
    """
    try:
        record = json.loads(line, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return "bad_json"
    if not isinstance(record, dict):
        return "bad_json"
    keys = record.keys()
    if keys != _KEYS and keys != _SIGNED_KEYS:
        return "bad_json"
    seq, prev, event, digest = (
        record["seq"],
        record["prev"],
        record["event"],
        record["hash"],
    )
    sig = record.get("sig")
    if (
        type(seq) is not int
        or not _is_hex64(prev)
        or not isinstance(event, dict)
        or not isinstance(digest, str)
        or (sig is not None and not isinstance(sig, str))
        or ("sig" in record and sig is None)
    ):
        return "bad_json"
    try:
        body = _canonical({"event": event, "prev": prev, "seq": seq})
    except ValueError:
        return "bad_json"
    if hashlib.sha256(body).hexdigest() != digest:
        return "bad_hash"
    if _line(body, digest, sig) != line:
        # Same meaning, different bytes (e.g. 1e0 for 1.0, escaped
        # characters, duplicate keys): not what the writer wrote.
        return "bad_json"
    return record


def _signature_ok(public_key: Ed25519PublicKey, digest: str, sig: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        raw = base64.b64decode(sig.encode("ascii"), validate=True)
        public_key.verify(raw, digest.encode("ascii"))
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True


def _is_recovery(event: Mapping[str, Any]) -> bool:
    return (
        event.get("invariant") == "I13"
        and event.get("reason") == "partial_line_truncated"
        and event.get("decision") == "flag"
    )


def verify_chain(
    path: str | os.PathLike[str],
    *,
    public_key: Ed25519PublicKey | None = None,
    anchor: tuple[int, str] | None = None,
) -> ChainReport:
    """Check an audit file written by :class:`JSONLSink`, line by line.

    Reads the file as a stream in constant memory. Stops at the first line
    that fails and reports it.

    Args:
        path: the audit file.
        public_key: when given, every line must carry a valid Ed25519
            signature by the matching private key. Without it signatures are
            not checked: anyone able to rewrite the file could then rebuild
            the whole chain, so the hash chain alone proves only that the
            file is internally consistent.
        anchor: a ``(seq, hash)`` pair recorded elsewhere earlier (see
            :attr:`JSONLSink.head`). The line with that ``seq`` must exist and
            have that hash; this detects a file cut short or rebuilt after
            the anchor was taken.

    Returns:
        a :class:`ChainReport`; ``bool(report)`` is ``report.ok``.
    """
    _check_arguments(public_key, anchor)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below, errors reported
    except OSError:
        return ChainReport(
            ok=False,
            lines=0,
            first_bad_line=1,
            reason="unreadable",
            last_hash=None,
            signed=False,
            signatures_verified=False,
            recoveries=0,
        )
    with stream:
        return verify_stream(stream, public_key=public_key, anchor=anchor)


def _check_arguments(
    public_key: Ed25519PublicKey | None, anchor: tuple[int, str] | None
) -> None:
    if public_key is not None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PublicKey,
        )

        if not isinstance(public_key, Ed25519PublicKey):
            raise PolicyError(
                "public_key must be an Ed25519PublicKey, not "
                f"{type(public_key).__name__}"
            )
    if anchor is not None and (
        not isinstance(anchor, tuple)
        or len(anchor) != 2
        or type(anchor[0]) is not int
        or anchor[0] < 1
        or not _is_hex64(anchor[1])
    ):
        raise PolicyError("anchor must be a (seq >= 1, 64-hex hash) pair")


class _LineSource(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def verify_stream(
    stream: _LineSource,
    *,
    public_key: Ed25519PublicKey | None = None,
    anchor: tuple[int, str] | None = None,
) -> ChainReport:
    """:func:`verify_chain` over an open binary stream.

    Reads with ``stream.readline(limit)`` only, so a caller can see every
    byte that is checked: the report summarises exactly the bytes verified,
    read once (a file swapped or rewritten between two reads cannot show
    one content and verify another).
    """
    _check_arguments(public_key, anchor)
    lines = 0
    prev = GENESIS_HASH
    all_signed = True
    recoveries = 0

    def report(reason: ChainReason | None, bad: int | None = None) -> ChainReport:
        signed = lines > 0 and all_signed
        return ChainReport(
            ok=reason is None,
            lines=lines,
            first_bad_line=bad,
            reason=reason,
            last_hash=prev if lines else None,
            signed=signed,
            signatures_verified=signed and public_key is not None,
            recoveries=recoveries,
        )

    while True:
        number = lines + 1
        try:
            raw = stream.readline(MAX_LINE_BYTES + 1)
        except OSError:
            return report("unreadable", number)
        if not raw:
            break
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_LINE_BYTES:
                return report("bad_json", number)
            return report("partial_tail", number)
        record = _check_record(raw)
        if isinstance(record, str):
            return report(record, number)
        if record["prev"] != prev:
            return report("broken_link", number)
        if record["seq"] != number:
            return report("bad_sequence", number)
        sig = record.get("sig")
        if public_key is not None:
            if sig is None:
                return report("missing_signature", number)
            if not _signature_ok(public_key, record["hash"], sig):
                return report("bad_signature", number)
        if anchor is not None and number == anchor[0] and (record["hash"] != anchor[1]):
            return report("anchor_mismatch", number)
        all_signed = all_signed and sig is not None
        if _is_recovery(record["event"]):
            recoveries += 1
        lines = number
        prev = record["hash"]
    if anchor is not None and lines < anchor[0]:
        return report("truncated", lines + 1)
    return report(None)
