"""A trail's segment files on disk: the path a writer writes, a segment's tail.

:func:`resolve_segment_path` expands a path template (``{host}``, ``{pid}``,
a directory) to this process's segment file; :func:`read_tail` and
:func:`sibling_tail` read the last record of a segment, the link a new
segment starts from (see :mod:`aiinvariants.audit._chain`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any, Final

from aiinvariants._errors import PolicyError
from aiinvariants.audit._records import (
    FORMAT_VERSION,
    MAX_LINE_BYTES,
    check_record,
)

__all__ = [
    "LOCK_NAME",
    "Candidate",
    "first_line",
    "generated",
    "link_of",
    "open_regular",
    "read_tail",
    "resolve_segment_path",
    "safe_name",
    "sibling_tail",
    "torn_record",
]

LOCK_NAME: Final = ".aiinvariants-audit.lock"
"""The file in a trail's directory that serialises starting a segment."""


def safe_name(text: str) -> str:
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
    host = safe_name(socket.gethostname() or "host")
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


def generated(spec: str) -> bool:
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


def read_tail(fd: int, path: Path) -> tuple[dict[str, Any] | None, int, int]:
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


def torn_record(fd: int, end: int, count: int) -> dict[str, Any]:
    lost = os.pread(fd, count, end)
    return {"bytes": count, "sha256": hashlib.sha256(lost).hexdigest()[:16]}


def link_of(record: dict[str, Any]) -> dict[str, Any]:
    return {"chain": record["chain"], "size": record["seq"], "head": record["hash"]}


def open_regular(path: Path) -> int:
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


def first_line(path: Path) -> dict[str, Any] | None:
    fd = open_regular(path)
    if fd < 0:
        return None
    try:
        with os.fdopen(fd, "rb") as stream:
            line = stream.readline(MAX_LINE_BYTES + 1)
    except OSError:
        return None
    record = check_record(line) if line.endswith(b"\n") else None
    return record if isinstance(record, dict) else None


class Candidate:
    __slots__ = ("link", "mtime", "torn")

    def __init__(self, link: dict[str, Any], torn: dict[str, Any] | None, mtime: float):
        self.link, self.torn, self.mtime = link, torn, mtime


def sibling_tail(path: Path) -> tuple[Candidate | None, bool]:
    """The tail of a sibling segment file whose writer is gone, or None.

    Returns (candidate, live): ``live`` when another process holds it.
    """
    fd = open_regular(path)
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
            record, end, torn = read_tail(fd, path)
        except PolicyError:
            return None, False
        if record is None:
            return None, False
        return (
            Candidate(
                link_of(record),
                torn_record(fd, end, torn) if torn else None,
                os.fstat(fd).st_mtime,
            ),
            False,
        )
    finally:
        os.close(fd)
