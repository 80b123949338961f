"""Provider data-use opt-out (I7).

What each provider offers, per request:

* **OpenAI** (chat completions, responses; also Azure OpenAI): ``store``.
  The guard sets ``store=False`` on every call and refuses ``store=True``
  when ``data_use.require_opt_out`` is on.
* **Anthropic** (messages): no per-request switch; the commercial API does
  not train on inputs or outputs by default. Nothing is set.
* **Amazon Bedrock** (converse): no switch; Bedrock does not use inputs or
  outputs to train models. Nothing is set.

The switches are only those that exist in the SDK signatures the guard
supports; a switch a call turns the wrong way is a ``DataUseDenied`` (a
``ModelDenied``) with invariant ``I7`` and code ``data_use_opt_in``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiinvariants._errors import DataUseDenied

__all__ = ["OPT_OUT_SWITCHES", "apply_opt_out"]

#: provider -> {parameter: opted-out value}; an empty mapping means "no switch".
OPT_OUT_SWITCHES: Final[dict[str, dict[str, object]]] = {
    "openai": {"store": False},
    "anthropic": {},
    "bedrock": {},
}


def apply_opt_out(
    provider: str, params: Mapping[str, Any], *, require: bool
) -> dict[str, Any]:
    """Return ``params`` with the provider's opt-out switches set.

    Args:
        provider: ``openai``, ``anthropic`` or ``bedrock``.
        params: the call's keyword arguments.
        require: the policy's ``data_use.require_opt_out``. When False the
            call's own settings are kept and missing switches are still set.

    Raises:
        DataUseDenied: (a ``ModelDenied``; I7, ``data_use_opt_in``) the
            call turns a switch on and the policy requires opt-out.
        KeyError: an unknown provider (a programming error).
    """
    switches = OPT_OUT_SWITCHES[provider]
    out = dict(params)
    for name, value in switches.items():
        given = out.get(name)
        if given is not None and given != value:
            if require:
                raise DataUseDenied(
                    f"the call sets {name}={given!r}; the policy requires "
                    "data-use opt-out",
                )
            continue
        out[name] = value
    return out
