"""The one writer of a segment per file and process, and the registry of writers.

Two sinks on one path in one process share a :class:`Writer`; a fork child
starts with none; a clean exit ends every segment with its final checkpoint
(see :mod:`aiinvariants.audit._chain` for the trail and its links).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import socket
import stat
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiinvariants._errors import PolicyError
from aiinvariants.audit._events import AuditEvent
from aiinvariants.audit._keys import key_id, sign_note
from aiinvariants.audit._records import (
    FORMAT_VERSION,
    GENESIS_HASH,
    MAX_LINE_BYTES,
    event_json,
    event_line,
    signed_line,
)
from aiinvariants.audit._segments import (
    LOCK_NAME,
    Candidate,
    first_line,
    link_of,
    read_tail,
    sibling_tail,
    torn_record,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["Writer", "acquire", "fork_lock", "release"]

_health = logging.getLogger("aiinvariants.audit.health")


class Writer:
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
        candidates: list[Candidate] = []
        for sibling in sorted(directory.glob("*.jsonl")):
            first = first_line(sibling)
            if first is not None and first["type"] == "start":
                if first["prev_segment"] is not None:
                    claimed.add(first["prev_segment"]["chain"])
                same = first["writer"]["name"] == self.name
            else:
                same = False
            if sibling.resolve() == self.path.resolve() or not same:
                continue
            candidate, _live = sibling_tail(sibling)
            if candidate is not None:
                candidates.append(candidate)
        record, end, torn = read_tail(self.fd, self.path)
        if record is not None and record["chain"] not in claimed:
            torn_info = None
            if torn:
                torn_info = torn_record(self.fd, end, torn)
                os.ftruncate(self.fd, end)
                _health.warning(
                    "audit file %s ended with a torn line (%d bytes, a crash "
                    "mid-write); recorded it in the new segment's start record",
                    self.path,
                    torn,
                )
            return link_of(record), torn_info
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
    from aiinvariants.audit._events import utc_now

    return utc_now()


_datasync = getattr(os, "fdatasync", os.fsync)

_writers_lock = threading.Lock()
_writers: dict[Path, Writer] = {}


def _same_key(a: Ed25519PrivateKey | None, b: Ed25519PrivateKey | None) -> bool:
    if a is None or b is None:
        return a is b
    return key_id(a) == key_id(b)


def acquire(path: Path, **settings: Any) -> Writer:
    resolved = path.resolve()
    with _writers_lock:
        writer = _writers.get(resolved)
        if writer is not None and (writer.closed or writer.pid != os.getpid()):
            writer = None
        if writer is None:
            writer = Writer(path, **settings)
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


def _close_ref(ref: weakref.ref[Writer]) -> None:
    writer = ref()
    if writer is not None and writer.pid == os.getpid():
        with contextlib.suppress(Exception):
            writer.close()


def _close_at_multiprocessing_exit(writer: Writer) -> None:
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


fork_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # Locks held by another thread at fork time would never be released in
    # the child; the parent's writers are the parent's.
    global _writers_lock, fork_lock
    _writers_lock = threading.Lock()
    fork_lock = threading.Lock()
    _writers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def release(writer: Writer) -> None:
    with _writers_lock:
        writer.users -= 1
        if writer.users > 0:
            return
        for path, known in list(_writers.items()):
            if known is writer:
                del _writers[path]
    writer.close()
