"""The LLM client guard: model (I5), region (I6) and data-use opt-out (I7).

Pure decisions live in :mod:`~aiinvariants.llm._models`,
:mod:`~aiinvariants.llm._regions` and :mod:`~aiinvariants.llm._optout`;
:func:`guard_llm` wraps a client so that every call passes them and every
answer passes the output pipeline. Content classifiers (I10) are in
:mod:`aiinvariants.filters.classifiers`.
"""

from __future__ import annotations

from aiinvariants.llm._guarded import CallGuard, GuardedCallable, guard_llm
from aiinvariants.llm._model_catalog import DERIVATIVES, Derivative, derived_from
from aiinvariants.llm._models import ModelId, decide_model, normalize_model
from aiinvariants.llm._optout import OPT_OUT_SWITCHES, apply_opt_out
from aiinvariants.llm._regions import Placement, decide_region, region_from_url

__all__ = [
    "DERIVATIVES",
    "OPT_OUT_SWITCHES",
    "CallGuard",
    "Derivative",
    "GuardedCallable",
    "ModelId",
    "Placement",
    "apply_opt_out",
    "decide_model",
    "decide_region",
    "derived_from",
    "guard_llm",
    "normalize_model",
    "region_from_url",
]
