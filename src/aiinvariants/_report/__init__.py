"""``aiinvariants report``: an audit log (and statistical results) as one HTML page.

The page is self-contained (inline CSS and SVG, no scripts, no network) so it
can be mailed, archived as evidence or opened offline. The log is checked
with :func:`aiinvariants.audit.verify_chain` and summarised in one streaming
pass; see :mod:`aiinvariants._report._read` for the memory bounds.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aiinvariants._report._html import render
from aiinvariants._report._read import read_log, read_stats
from aiinvariants.audit import ChainReport, verify_chain

__all__ = ["write_report"]


def write_report(
    log: Path,
    output: Path,
    *,
    stats: Path | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> ChainReport:
    """Write the report of ``log`` to ``output``; return the chain's verdict.

    Raises:
        PolicyError: the log or the results cannot be read, or the output
            cannot be written (the message names the file).
    """
    summary = read_log(log)
    results = None if stats is None else read_stats(stats)
    chain = verify_chain(log, public_key=public_key)
    page = render(
        summary,
        chain,
        key_given=public_key is not None,
        stats=results,
        generated=time.time(),
    )
    # Written next to the target and renamed: a reader never sees half a page.
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        from aiinvariants.errors import PolicyError

        raise PolicyError(f"cannot write {output}: {exc.strerror}") from None
    return chain
