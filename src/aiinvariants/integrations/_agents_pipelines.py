"""Output pipelines shared by an Agents SDK integration's calls.

Building a pipeline from the policy costs far more than scanning a tool
result with it, so one is kept per guard (and per protected instructions
text), rebuilt when the guard's policy is replaced. A shared pipeline is
never given per-run state: runs with confidential tool outputs get their own.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Final

from aiinvariants.filters import OutputPipeline, SystemPromptLeakFilter

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants.policy import Policy

_PER_GUARD: Final = 64
_cache: weakref.WeakKeyDictionary[
    Guard, dict[str | None, tuple[Policy, OutputPipeline]]
]
_cache = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def fresh_pipeline(guard: Guard, hidden: str | None = None) -> OutputPipeline:
    """A new pipeline of the guard's policy, protecting ``hidden`` too."""
    pipeline = guard.output_pipeline()
    if hidden:
        try:
            leak: SystemPromptLeakFilter = pipeline.get(SystemPromptLeakFilter)
        except LookupError:
            pass
        else:
            leak.add_hidden(hidden)
    return pipeline


def shared_pipeline(guard: Guard, hidden: str | None = None) -> OutputPipeline:
    """The guard's pipeline (protecting ``hidden``), built once per policy."""
    policy = guard.policy
    with _lock:
        per = _cache.get(guard)
        hit = per.get(hidden) if per is not None else None
    if hit is not None and hit[0] is policy:
        return hit[1]
    pipeline = fresh_pipeline(guard, hidden)
    with _lock:
        per = _cache.setdefault(guard, {})
        if len(per) >= _PER_GUARD:
            per.clear()
        per[hidden] = (policy, pipeline)
    return pipeline
