"""``python -m aiinvariants``: the ``aiinvariants`` command."""

from __future__ import annotations

from aiinvariants._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
