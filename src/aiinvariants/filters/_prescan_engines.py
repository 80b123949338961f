"""Which candidate search :class:`~aiinvariants.filters.SecretsFilter` runs.

Three engines report the same findings (a differential test holds them to
it): the pure-Python search (the default install), and two optional native
pre-scans, ``hyperscan`` (vectorscan, the ``hyperscan`` extra) and ``re2``
(the ``re2`` extra). An installed native engine is used; with both, the
faster on the benchmark (``re2``: see docs/output-filters.md). The environment variable
``AIINVARIANTS_SECRETS_ENGINE`` (``auto``, ``pure``, ``re2``,
``hyperscan``) picks one instead.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Final, cast

from aiinvariants._errors import PolicyError
from aiinvariants.filters._prescan import Prescan, anchor_pairs, native_prescan

__all__ = ["ENGINES", "ENGINE_ENV", "engine_choice", "native_engine"]

ENGINE_ENV: Final = "AIINVARIANTS_SECRETS_ENGINE"
ENGINES: Final = ("pure", "re2", "hyperscan")
# engine -> the module it needs; "auto" takes the first installed
_MODULES: Final = {"hyperscan": "hyperscan", "re2": "re2"}


def _installed(engine: str) -> bool:
    return engine == "pure" or importlib.util.find_spec(_MODULES[engine]) is not None


def engine_choice(engine: str | None = None) -> str:
    """The engine to run: ``engine`` when given, else the environment
    variable, else the fastest installed one.

    Raises:
        PolicyError: an unknown engine, or one that is not installed.
    """
    source = "engine"
    if engine is None:
        engine = os.environ.get(ENGINE_ENV, "auto").strip().lower() or "auto"
        source = f"environment variable {ENGINE_ENV}"
    if engine == "auto":
        return next((e for e in ("re2", "hyperscan") if _installed(e)), "pure")
    if engine not in ENGINES:
        raise PolicyError(
            f"{source}: unknown secrets engine {engine[:40]!r}; use one of "
            "auto, pure, re2, hyperscan"
        )
    if not _installed(engine):
        raise PolicyError(
            f"{source}: the {engine} engine is not installed; install the "
            f"'aiinvariants[{engine}]' extra or choose auto or pure"
        )
    return engine


def native_engine(
    engine: str, plans: tuple[Any, Any, Any, Any], reach: int
) -> Prescan | None:
    """The compiled pre-scan of ``engine`` over the rules' anchors
    (``plans``: the rules, token table, context plan and cased plan), or
    None when it cannot be built (the pure-Python search runs)."""
    pairs = anchor_pairs(*plans)
    if engine == "re2":
        return native_prescan(list(dict.fromkeys(a for a, _ in pairs)), reach)
    if engine == "hyperscan":
        from aiinvariants.filters._prescan_hs import hyperscan_prescan

        # the same interface as Prescan: windows(text), reach
        return cast("Prescan | None", hyperscan_prescan(pairs, reach))
    return None
