"""The tamper-evident audit file writer: one segment per process, many per trail.

A *trail* is a set of segment files (one directory, or the files a path
template such as ``audit/{host}-{pid}.jsonl`` expands to). Each process writes
its own *segment*: a start record, the events, and checkpoints; a segment is
never written by two processes. Two sinks on the same path in one process
share one writer. The format is specified in ``docs/audit-format.md``; the
records themselves are built in :mod:`aiinvariants.audit._records`.

A new segment links to its predecessor: the earlier segment in the same file
(a restarted process reopening its file), or else the most recent segment of
the same writer name in the directory whose writer is gone (its lock is free)
and that no other segment continues yet. The start record holds the
predecessor's chain id, size and head hash, so cutting records off the end of
a continued segment, or removing it, is caught; a predecessor that ended in a
torn line (a crash mid-write) is recorded as such, not taken for tampering.

One job per module: this one is the sink users hold (:class:`JSONLSink`);
the records are encoded in :mod:`~aiinvariants.audit._records`, segment files
found and read in ``_segments``, written by the per-process writer in
``_writer``, keys loaded in :mod:`~aiinvariants.audit._keys` and trails
verified in :mod:`~aiinvariants.audit._verify` (names re-exported here).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiinvariants._errors import PolicyError
from aiinvariants._internal.closing import Closing
from aiinvariants._internal.deprecation import renamed_keyword
from aiinvariants.audit import _writer
from aiinvariants.audit._events import AuditEvent
from aiinvariants.audit._keys import load_signing_key
from aiinvariants.audit._records import FORMAT_VERSION as FORMAT_VERSION
from aiinvariants.audit._records import GENESIS_HASH
from aiinvariants.audit._segments import LOCK_NAME as LOCK_NAME
from aiinvariants.audit._segments import generated, resolve_segment_path
from aiinvariants.audit._verify import (
    ChainReport,
    TrailReport,
    verify_chain,
    verify_trail,
)

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


class JSONLSink(Closing):
    """Append audit events to this process's segment of a tamper-evident trail.

    Every event becomes one line, written with a single ``os.write`` on a
    file opened with ``O_APPEND``: a crash can lose at most the line being
    written. The segment starts with a start record and, when the sink
    closes, ends with a final checkpoint; with a ``signing_key`` a signed
    checkpoint also follows every ``checkpoint_every`` events or, at the
    next event, ``checkpoint_every_s`` after the last one, so events are
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
        checkpoint_every_s: longest time, in seconds, between two signed
            checkpoints while events arrive (default 10).
        writer_name: whose segments this process continues after a restart
            (default: the host name).
        checkpoint_seconds: the deprecated old name of ``checkpoint_every_s``
            (warns).

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
        checkpoint_every_s: float | None = None,
        writer_name: str | None = None,
        checkpoint_seconds: float | None = None,
    ) -> None:
        checkpoint_every_s = renamed_keyword(
            "JSONLSink",
            "checkpoint_seconds",
            checkpoint_seconds,
            "checkpoint_every_s",
            checkpoint_every_s,
        )
        if checkpoint_every_s is None:
            checkpoint_every_s = 10.0
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
            isinstance(checkpoint_every_s, bool)
            or not isinstance(checkpoint_every_s, (int, float))
            or not checkpoint_every_s > 0
        ):
            raise PolicyError("checkpoint_every_s must be a number > 0")
        name = socket.gethostname() if writer_name is None else writer_name
        if not isinstance(name, str) or not name or len(name) > 256:
            raise PolicyError("writer_name must be a non-empty str of <= 256 chars")
        self._writer: _writer.Writer | None = None
        self._spec = os.fspath(path)
        self._settings: dict[str, Any] = {
            "key": signing_key,
            "fsync": bool(fsync),
            "checkpoint_every": checkpoint_every,
            "checkpoint_seconds": float(checkpoint_every_s),
            "name": name,
            "generated": generated(self._spec),
        }
        self._writer = _writer.acquire(
            resolve_segment_path(self._spec), **self._settings
        )
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

    def _shared(self) -> _writer.Writer:
        writer = self._writer
        if writer is None:
            raise PolicyError("the JSONLSink was not opened")
        if writer.pid == os.getpid():
            return writer
        # A forked child (gunicorn --preload, multiprocessing): it gets its
        # own segment when the path names one per process ({pid}, a
        # directory); a fixed path stays the parent's and is refused.
        with _writer.fork_lock:
            writer = self._writer
            if writer is not None and writer.pid != os.getpid():
                writer = _writer.acquire(
                    resolve_segment_path(self._spec), **self._settings
                )
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
                _writer.release(writer)

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
