"""``aiinvariants report``: an audit log (and statistical results) as one HTML page.

The page is self-contained (inline CSS and SVG, no scripts, no network) so it
can be mailed, archived as evidence or opened offline. The log is checked
with :func:`aiinvariants.audit.verify_chain` and summarised in one streaming
pass; see :mod:`aiinvariants._report._read` for the memory bounds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aiinvariants._errors import PolicyError
from aiinvariants._report._html import render
from aiinvariants._report._read import LogSummary, Tee, open_log, read_stats
from aiinvariants.audit import ChainReport
from aiinvariants.audit._verify import verify_stream

__all__ = ["write_report"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False


def write_report(
    log: Path,
    output: Path,
    *,
    stats: Path | None = None,
    public_key: Ed25519PublicKey | None = None,
    anchor: tuple[int, str] | None = None,
) -> ChainReport:
    """Write the report of ``log`` to ``output``; return the chain's verdict.

    ``public_key`` and ``anchor`` are those of
    :func:`~aiinvariants.audit.verify_chain`: without an anchor, lines cut
    off the end of the log go unnoticed, and the page says so.

    Raises:
        PolicyError: the log or the results cannot be read, or the output
            cannot be written (the message names the file).
    """
    for source in (log, stats):
        if source is not None and _same_file(source, output):
            # Writing the page over its own evidence would destroy the log.
            raise PolicyError(
                f"-o {output} is the input file {source}; write the report elsewhere"
            )
    if not output.name:
        raise PolicyError(f"-o {output!s}: give the HTML file to write")
    if output.exists() and not output.is_file():
        # The page is renamed over the name: "-o /dev/stdout" would replace
        # the device link itself, for every program on the machine.
        raise PolicyError(
            f"-o {output} is not a regular file (a folder, device or pipe); "
            "give the path of the HTML file to write"
        )
    summary = LogSummary(path=log)
    results = None if stats is None else read_stats(stats)
    with open_log(log) as stream:
        # One read of the log: the page shows exactly the bytes verified.
        lines = Tee(stream, summary)
        chain = verify_stream(lines, public_key=public_key, anchor=anchor)
        lines.drain()
    page = render(
        summary,
        chain,
        key_given=public_key is not None,
        anchored=anchor is not None,
        stats=results,
        generated=time.time(),
    )
    # Written to a fresh file next to the target (O_EXCL: never through a
    # link planted under a guessable name) and renamed: a reader never sees
    # half a page.
    partial: str | None = None
    try:
        fd, partial = tempfile.mkstemp(
            prefix=f".{output.name}.", suffix=".partial", dir=output.parent
        )
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(page)
        os.replace(partial, output)
    except OSError as exc:
        if partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial)
        raise PolicyError(f"cannot write {output}: {exc.strerror}") from None
    return chain
