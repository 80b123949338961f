"""The tamper-evident audit file writer: one segment per process, many per trail.

A *trail* is a set of segment files (one directory, or the files a path
template such as ``audit/{host}-{pid}.jsonl`` expands to). Each process writes
its own *segment*: a start record, the events, and checkpoints; a segment is
never written by two processes. Two sinks on the same path in one process
share one writer. The format is specified in ``docs/audit-format.md``; the
records themselves are built in :mod:`aiinvariants.audit.records`.

A new segment links to its predecessor: the earlier segment in the same file
(a restarted process reopening its file), or else the most recent segment of
the same writer name in the directory whose writer is gone (its lock is free)
and that no other segment continues yet. The start record holds the
predecessor's chain id, size and head hash, so cutting records off the end of
a continued segment, or removing it, is caught; a predecessor that ended in a
torn line (a crash mid-write) is recorded as such, not taken for tampering.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import logging
import os
import socket
import stat
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiinvariants._internal.closing import Closing
from aiinvariants.audit.events import AuditEvent
from aiinvariants.audit.keys import key_id, load_signing_key, sign_note
from aiinvariants.audit.records import (
    FORMAT_VERSION,
    GENESIS_HASH,
    MAX_LINE_BYTES,
    check_record,
    event_json,
    event_line,
    signed_line,
)
from aiinvariants.audit.verify import (
    ChainReport,
    TrailReport,
    verify_chain,
    verify_trail,
)
from aiinvariants.errors import PolicyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "GENESIS_HASH",
    "ChainReport",
    "JSONLSink",
    "TrailReport",
    "load_signing_key",
    "resolve_segment_path",
    "verify_chain",
    "verify_trail",
]

_health = logging.getLogger("aiinvariants.audit.health")

LOCK_NAME: Final = ".aiinvariants-audit.lock"
"""The file in a trail's directory that serialises starting a segment."""


def _safe(text: str) -> str:
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in text
    )


def resolve_segment_path(path: str | os.PathLike[str]) -> Path:
    """The segment file this process writes for ``path``.

    ``{host}`` and ``{pid}`` in ``path`` are replaced by this host's name and
    this process's id; a ``path`` that is an existing directory, or ends
    with a path separator, gets the file ``<host>-<pid>.jsonl`` in it.

    Raises:
        PolicyError: ``path`` holds another ``{…}`` field.
    """
    text = os.fspath(path)
    host = _safe(socket.gethostname() or "host")
    pid = str(os.getpid())
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return Path(text) / f"{host}-{pid}.jsonl"
    try:
        return Path(text.format_map({"host": host, "pid": pid}))
    except (KeyError, ValueError, IndexError):
        raise PolicyError(
            f"audit path {text!r}: only {{host}} and {{pid}} may be filled in "
            "(write a literal brace as {{ or }})"
        ) from None


def _generated(spec: str) -> bool:
    """True when the segment's file name comes from a template or directory."""
    return "{" in spec or spec.endswith(("/", os.sep)) or Path(spec).is_dir()


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


def _tail(fd: int, path: Path) -> tuple[dict[str, Any] | None, int, int]:
    """(last complete record or None, end of the complete lines, torn bytes)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, 0, 0
    newline = _last_newline(fd, size, max(0, size - MAX_LINE_BYTES - 1))
    end = newline + 1
    if end == 0:
        if size > MAX_LINE_BYTES:
            raise PolicyError(f"the audit file {path} holds no audit record")
        return None, 0, size
    start = _last_newline(fd, end - 1, max(0, end - 2 - MAX_LINE_BYTES)) + 1
    record = check_record(os.pread(fd, end - start, start))
    if isinstance(record, str):
        raise PolicyError(
            f"the last line of the audit file {path} is not a valid version "
            f"{FORMAT_VERSION} record ({record}); run `aiinvariants audit "
            "verify` on it and write to a new file"
        )
    return record, end, size - end


def _torn(fd: int, end: int, count: int) -> dict[str, Any]:
    lost = os.pread(fd, count, end)
    return {"bytes": count, "sha256": hashlib.sha256(lost).hexdigest()[:16]}


def _link(record: dict[str, Any]) -> dict[str, Any]:
    return {"chain": record["chain"], "size": record["seq"], "head": record["hash"]}


def _open_regular(path: Path) -> int:
    """A read-only fd on ``path`` when it is a regular file, else -1.

    Non-blocking, so a FIFO planted in the trail's directory cannot hang the
    process that starts a segment (with the directory lock held).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return -1
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return -1
    return fd


def _first_line(path: Path) -> dict[str, Any] | None:
    fd = _open_regular(path)
    if fd < 0:
        return None
    try:
        with os.fdopen(fd, "rb") as stream:
            line = stream.readline(MAX_LINE_BYTES + 1)
    except OSError:
        return None
    record = check_record(line) if line.endswith(b"\n") else None
    return record if isinstance(record, dict) else None


class _Candidate:
    __slots__ = ("link", "mtime", "torn")

    def __init__(self, link: dict[str, Any], torn: dict[str, Any] | None, mtime: float):
        self.link, self.torn, self.mtime = link, torn, mtime


def _sibling_tail(path: Path) -> tuple[_Candidate | None, bool]:
    """The tail of a sibling segment file whose writer is gone, or None.

    Returns (candidate, live): ``live`` when another process holds it.
    """
    fd = _open_regular(path)
    if fd < 0:
        return None, False
    try:
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return None, True
        try:
            record, end, torn = _tail(fd, path)
        except PolicyError:
            return None, False
        if record is None:
            return None, False
        return (
            _Candidate(
                _link(record),
                _torn(fd, end, torn) if torn else None,
                os.fstat(fd).st_mtime,
            ),
            False,
        )
    finally:
        os.close(fd)


class _Writer:
    """The one writer of one segment file in this process."""

    def __init__(
        self,
        path: Path,
        *,
        key: Ed25519PrivateKey | None,
        fsync: bool,
        checkpoint_every: int,
        checkpoint_seconds: float,
        name: str,
        generated: bool = False,
    ) -> None:
        self.path = path
        self.generated = generated
        self.key = key
        self.key_id = None if key is None else key_id(key)
        self.fsync = fsync
        self.every = checkpoint_every
        self.seconds = checkpoint_seconds
        self.name = name
        self.pid = os.getpid()
        self.users = 0
        self.lock = threading.Lock()
        self.closed = False
        self.chain = os.urandom(16).hex()
        self.fd = -1
        self.seq = 0
        self.prev = GENESIS_HASH
        self.size = 0
        self.since_checkpoint = 0
        self.checkpoint_at = time.monotonic()
        self._sign = None if key is None else (lambda digest: sign_note(key, digest))
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._start()
        if key is not None:
            # Signs an idle tail too: events wait at most `seconds` for a
            # checkpoint even when no further event arrives.
            self._ticker = threading.Thread(
                target=self._tick, name="aiinvariants-audit-checkpoint", daemon=True
            )
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(max(self.seconds, 0.01)):
            with self.lock:
                if self.closed or os.getpid() != self.pid:
                    return
                if self.since_checkpoint and (
                    time.monotonic() - self.checkpoint_at >= self.seconds
                ):
                    try:
                        self._checkpoint(final=False)
                    except OSError:
                        _health.error(
                            "audit file %s: a timed checkpoint failed", self.path
                        )

    # -- opening ---------------------------------------------------------

    def _start(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PolicyError(
                f"cannot create the audit directory {directory} ({exc.strerror})"
            ) from None
        dir_lock = self._lock_directory(directory)
        try:
            self.fd = self._open()
            try:
                link, torn = self._predecessor(directory)
                self._write_start(link, torn)
            except BaseException:
                fd, self.fd = self.fd, -1
                os.close(fd)
                raise
        finally:
            if dir_lock >= 0:
                os.close(dir_lock)

    def _lock_directory(self, directory: Path) -> int:
        if sys.platform == "win32":  # pragma: no cover
            return -1
        import fcntl

        try:
            fd = os.open(
                directory / LOCK_NAME,
                os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                0o600,
            )
        except OSError as exc:
            raise PolicyError(
                f"cannot create the audit lock file in {directory} ({exc.strerror})"
            ) from None
        fcntl.flock(fd, fcntl.LOCK_EX)  # short: held while a segment starts
        return fd

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            if self.generated:
                # A name the library made up ({pid}, a directory): a link
                # planted there beforehand would divert the segment.
                flags |= getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(self.path, flags | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            raise PolicyError(
                f"cannot open the audit file {self.path} ({exc.strerror})"
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            # /dev/null, a FIFO or a device (e.g. a link planted at the name
            # a pid will take): records written there are not kept.
            os.close(fd)
            raise PolicyError(
                f"the audit file {self.path} is not a regular file; records "
                "written to it would not be kept"
            )
        os.set_blocking(fd, True)
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise PolicyError(
                    f"another process writes the audit file {self.path}; give "
                    "each process its own segment: a directory (path ending in "
                    "/) or a path with {host} and {pid}"
                ) from None
        return fd

    def _predecessor(
        self, directory: Path
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        claimed: set[str] = set()
        candidates: list[_Candidate] = []
        for sibling in sorted(directory.glob("*.jsonl")):
            first = _first_line(sibling)
            if first is not None and first["type"] == "start":
                if first["prev_segment"] is not None:
                    claimed.add(first["prev_segment"]["chain"])
                same = first["writer"]["name"] == self.name
            else:
                same = False
            if sibling.resolve() == self.path.resolve() or not same:
                continue
            candidate, _live = _sibling_tail(sibling)
            if candidate is not None:
                candidates.append(candidate)
        record, end, torn = _tail(self.fd, self.path)
        if record is not None and record["chain"] not in claimed:
            torn_info = None
            if torn:
                torn_info = _torn(self.fd, end, torn)
                os.ftruncate(self.fd, end)
                _health.warning(
                    "audit file %s ended with a torn line (%d bytes, a crash "
                    "mid-write); recorded it in the new segment's start record",
                    self.path,
                    torn,
                )
            return _link(record), torn_info
        if torn:
            # A torn first line, or the tail of a segment continued elsewhere.
            os.ftruncate(self.fd, end)
        free = [c for c in candidates if c.link["chain"] not in claimed]
        if not free:
            return None, None
        chosen = max(free, key=lambda c: c.mtime)
        return chosen.link, chosen.torn

    def _write_start(
        self, link: dict[str, Any] | None, torn: dict[str, Any] | None
    ) -> None:
        self.size = os.fstat(self.fd).st_size
        record = {
            "v": FORMAT_VERSION,
            "type": "start",
            "chain": self.chain,
            "seq": 1,
            "prev": GENESIS_HASH,
            "time": _now(),
            "key_id": self.key_id,
            "writer": {
                "host": socket.gethostname(),
                "name": self.name,
                "pid": self.pid,
            },
            "prev_segment": link,
            "torn": torn,
        }
        line, digest = signed_line(record, self._sign)
        self._append(line)
        self.seq, self.prev = 1, digest

    # -- writing ---------------------------------------------------------

    def write(self, event: AuditEvent) -> None:
        data = event_json(event)
        if len(data) > MAX_LINE_BYTES - 512:
            raise PolicyError(
                f"audit event is {len(data)} bytes; a line holds at most "
                f"{MAX_LINE_BYTES}"
            )
        with self.lock:
            if self.closed:
                # (JSONLSink checked the pid before calling.)
                raise PolicyError(f"the audit file {self.path} is closed")
            seq = self.seq + 1
            line, digest = event_line(self.chain, data, self.prev, seq)
            self._append(line)
            self.seq, self.prev = seq, digest
            self.since_checkpoint += 1
            if self._sign is not None and (
                self.since_checkpoint >= self.every
                or time.monotonic() - self.checkpoint_at >= self.seconds
            ):
                try:
                    self._checkpoint(final=False)
                except OSError:
                    # The event is in the file: failing here would deny a
                    # decision the trail records as made. The checkpoint is
                    # retried at the next event, by the ticker and at close.
                    _health.error(
                        "audit file %s: a checkpoint failed after an event",
                        self.path,
                    )

    def _check_open(self) -> None:
        if self.closed:
            raise PolicyError(f"the audit file {self.path} is closed")
        if os.getpid() != self.pid:
            # A forked child shares the fd and the lock with its parent; both
            # appending would fork the chain.
            raise PolicyError(
                "a JSONLSink cannot be used in a forked child; build the Guard "
                "(or sink) in the child, with {pid} in the path"
            )

    def checkpoint(self) -> None:
        with self.lock:
            self._check_open()
            self._checkpoint(final=False)

    def _checkpoint(self, *, final: bool) -> None:
        record = {
            "v": FORMAT_VERSION,
            "type": "checkpoint",
            "chain": self.chain,
            "seq": self.seq + 1,
            "prev": self.prev,
            "time": _now(),
            "key_id": self.key_id,
            "final": final,
        }
        line, digest = signed_line(record, self._sign)
        self._append(line)
        self.seq, self.prev = self.seq + 1, digest
        self.since_checkpoint = 0
        self.checkpoint_at = time.monotonic()

    def _append(self, line: bytes) -> None:
        if os.fstat(self.fd).st_nlink == 0:
            # The segment file was deleted under the writer: what it wrote
            # would vanish with the descriptor, so the record counts as lost.
            raise OSError(
                errno.ENOENT,
                f"the audit file {self.path} was removed while open; nothing "
                "written to it would remain",
            )
        try:
            written = os.write(self.fd, line)
            if written != len(line):
                raise OSError(f"short write to the audit file {self.path}")
            if self.fsync:
                _datasync(self.fd)
        except BaseException:
            # Cut off whatever part of the line reached the file, so the next
            # line still follows a complete one.
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                self.closed = True  # the chain cannot continue safely
            raise
        self.size += len(line)

    def close(self) -> None:
        self._stop.set()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=5)
        with self.lock:
            if self.fd < 0:
                return
            try:
                if not self.closed and os.getpid() == self.pid:
                    self._checkpoint(final=True)
            finally:
                self.closed = True
                fd, self.fd = self.fd, -1
                if os.getpid() == self.pid:
                    os.close(fd)

    def __del__(self) -> None:
        fd = getattr(self, "fd", -1)
        if fd >= 0 and getattr(self, "pid", -1) == os.getpid():
            self.fd = -1
            with contextlib.suppress(OSError):
                os.close(fd)


def _now() -> str:
    from aiinvariants.audit.events import utc_now

    return utc_now()


_datasync = getattr(os, "fdatasync", os.fsync)

_writers_lock = threading.Lock()
_writers: dict[Path, _Writer] = {}


def _same_key(a: Ed25519PrivateKey | None, b: Ed25519PrivateKey | None) -> bool:
    if a is None or b is None:
        return a is b
    return key_id(a) == key_id(b)


def _acquire(path: Path, **settings: Any) -> _Writer:
    resolved = path.resolve()
    with _writers_lock:
        writer = _writers.get(resolved)
        if writer is not None and (writer.closed or writer.pid != os.getpid()):
            writer = None
        if writer is None:
            writer = _Writer(path, **settings)
            _writers[resolved] = writer
            _close_at_multiprocessing_exit(writer)
        elif not (
            _same_key(writer.key, settings["key"])
            and writer.fsync == settings["fsync"]
            and writer.every == settings["checkpoint_every"]
            and writer.seconds == settings["checkpoint_seconds"]
            and writer.name == settings["name"]
        ):
            raise PolicyError(
                f"the audit file {path} is already open in this process with "
                "other settings (signing key, fsync, checkpoints or writer "
                "name); every sink on one file must use the same ones"
            )
        writer.users += 1
        return writer


def _close_ref(ref: weakref.ref[_Writer]) -> None:
    writer = ref()
    if writer is not None and writer.pid == os.getpid():
        with contextlib.suppress(Exception):
            writer.close()


def _close_at_multiprocessing_exit(writer: _Writer) -> None:
    # A multiprocessing child (fork) ends with os._exit after running its
    # finalizers, never atexit: without this its segment stays open and its
    # last events are covered by no signed checkpoint.
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(writer, _close_ref, args=(weakref.ref(writer),), exitpriority=0)


def _close_all() -> None:
    # A clean exit ends every segment with its final checkpoint.
    with _writers_lock:
        writers = list(_writers.values())
        _writers.clear()
    for writer in writers:
        if writer.pid == os.getpid():
            with contextlib.suppress(Exception):
                writer.close()


atexit.register(_close_all)


_fork_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # Locks held by another thread at fork time would never be released in
    # the child; the parent's writers are the parent's.
    global _writers_lock, _fork_lock
    _writers_lock = threading.Lock()
    _fork_lock = threading.Lock()
    _writers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _release(writer: _Writer) -> None:
    with _writers_lock:
        writer.users -= 1
        if writer.users > 0:
            return
        for path, known in list(_writers.items()):
            if known is writer:
                del _writers[path]
    writer.close()


class JSONLSink(Closing):
    """Append audit events to this process's segment of a tamper-evident trail.

    Every event becomes one line, written with a single ``os.write`` on a
    file opened with ``O_APPEND``: a crash can lose at most the line being
    written. The segment starts with a start record and, when the sink
    closes, ends with a final checkpoint; with a ``signing_key`` a signed
    checkpoint also follows every ``checkpoint_every`` events or, at the
    next event, ``checkpoint_seconds`` after the last one, so events are
    signed in batches rather than one by one.

    Sinks on the same path in one process share one writer (two Guards are
    fine); they must agree on the settings. The writer holds an exclusive
    ``flock`` on its file, so another process gets a :class:`PolicyError`:
    give each process its own segment with a directory (``audit/``) or a
    template (``audit/{host}-{pid}.jsonl``).

    Args:
        path: the segment file, a template with ``{host}`` and ``{pid}``, or
            a directory (existing, or ending in ``/``).
        signing_key: signs the start record and the checkpoints, so that
            someone who can rewrite the files but does not hold the key cannot
            rebuild a valid trail after editing, reordering or cutting it.
        fsync: flush each line to stable storage before ``write`` returns.
        checkpoint_every: events between two signed checkpoints.
        checkpoint_seconds: longest time between two signed checkpoints
            while events arrive.
        writer_name: whose segments this process continues after a restart
            (default: the host name).

    Raises:
        PolicyError: another process writes the file, the file cannot be
            opened, its last line is not a valid record, or an argument is
            invalid.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        signing_key: Ed25519PrivateKey | None = None,
        fsync: bool = False,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 10.0,
        writer_name: str | None = None,
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
        if (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, int)
            or checkpoint_every < 1
        ):
            raise PolicyError("checkpoint_every must be an int >= 1")
        if (
            isinstance(checkpoint_seconds, bool)
            or not isinstance(checkpoint_seconds, (int, float))
            or not checkpoint_seconds > 0
        ):
            raise PolicyError("checkpoint_seconds must be a number > 0")
        name = socket.gethostname() if writer_name is None else writer_name
        if not isinstance(name, str) or not name or len(name) > 256:
            raise PolicyError("writer_name must be a non-empty str of <= 256 chars")
        self._writer: _Writer | None = None
        self._spec = os.fspath(path)
        self._settings: dict[str, Any] = {
            "key": signing_key,
            "fsync": bool(fsync),
            "checkpoint_every": checkpoint_every,
            "checkpoint_seconds": float(checkpoint_seconds),
            "name": name,
            "generated": _generated(self._spec),
        }
        self._writer = _acquire(resolve_segment_path(self._spec), **self._settings)
        self._open = True

    @property
    def path(self) -> Path:
        """The segment file this process writes."""
        return self._shared().path

    @property
    def chain_id(self) -> str:
        """The id of this process's segment (32 hex digits)."""
        return self._shared().chain

    @property
    def signed(self) -> bool:
        """True when the segment's start record and checkpoints are signed."""
        return self._shared().key is not None

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record written: an external anchor.

        Pass it back, with :attr:`chain_id`, to ``verify_trail(..., anchors=)``
        or ``aiinvariants audit verify --anchor CHAIN:SEQ:HASH``.
        """
        writer = self._shared()
        with writer.lock:
            return writer.seq, writer.prev

    def _shared(self) -> _Writer:
        writer = self._writer
        if writer is None:
            raise PolicyError("the JSONLSink was not opened")
        if writer.pid == os.getpid():
            return writer
        # A forked child (gunicorn --preload, multiprocessing): it gets its
        # own segment when the path names one per process ({pid}, a
        # directory); a fixed path stays the parent's and is refused.
        with _fork_lock:
            writer = self._writer
            if writer is not None and writer.pid != os.getpid():
                writer = _acquire(resolve_segment_path(self._spec), **self._settings)
                self._writer = writer
        if writer is None:
            raise PolicyError("the JSONLSink was not opened")
        return writer

    def write(self, event: AuditEvent) -> None:
        """Append ``event`` as the next record of this process's segment.

        Raises:
            PolicyError: the sink is closed, used in a forked child on a
                fixed path (another process's file), or the event is too
                large for a line.
            ValueError: the event has no canonical form (a lone surrogate).
            OSError: the line could not be written (disk full…); the segment
                is left as it was before the call.
        """
        if not self._open:
            raise PolicyError(f"the audit sink on {self._spec} is closed")
        self._shared().write(event)

    def checkpoint(self) -> None:
        """Write a (signed, when there is a key) checkpoint now."""
        if not self._open:
            raise PolicyError(f"the audit sink on {self._spec} is closed")
        self._shared().checkpoint()

    def close(self) -> None:
        """Release this sink; the last one on a file ends the segment. Idempotent."""
        if getattr(self, "_open", False):
            self._open = False
            writer = self._writer
            if writer is not None and writer.pid == os.getpid():
                _release(writer)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        writer = self._writer
        if writer is None:
            return "JSONLSink(<not opened>)"
        return (
            f"JSONLSink(path={str(writer.path)!r}, signed={writer.key is not None}, "
            f"fsync={writer.fsync})"
        )
