"""A tool's declaration in code: :class:`ToolSpec` and its validation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from aiinvariants._errors import PolicyError
from aiinvariants._scopes import ScopeRule, all_of, any_of

__all__ = ["ToolSpec", "tool_spec"]

_EXPOSURES: Final = ("public", "internal")


@dataclass(frozen=True)
class ToolSpec:
    """What one tool needs and touches, as declared in code.

    Attributes:
        name: the tool's name (the key of ``policy.tools``).
        rule: the scopes it needs, or None for none.
        capabilities: what it can do.
        data: the highest classification it returns; None = undeclared.
        exposure: ``public`` / ``internal``; None = the policy decides.
        untrusted_output: its output may carry injected instructions; None
            lets the policy decide (untrusted unless it says otherwise).
        free_text: the parameters whose values are the model's prose (I12
            provenance checks only the identifiers they carry); None:
            undeclared (see ``free_text`` in the policy).
    """

    name: str
    rule: ScopeRule | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)
    data: str | None = None
    exposure: str | None = None
    untrusted_output: bool | None = None
    free_text: frozenset[str] | None = None


def tool_spec(
    name: str,
    *,
    scopes: Iterable[str] = (),
    any_scopes: Iterable[str] = (),
    capabilities: Iterable[str] = (),
    data: str | None = None,
    exposure: str | None = None,
    untrusted_output: bool | None = None,
    free_text: Iterable[str] | None = None,
) -> ToolSpec:
    """Build and validate a :class:`ToolSpec`.

    Raises:
        PolicyError: a malformed name, scope or exposure.
    """
    if not isinstance(name, str) or not name or len(name) > 128:
        raise PolicyError("a tool needs a non-empty name of at most 128 characters")
    for what, value in (
        ("scopes", scopes),
        ("any_scopes", any_scopes),
        ("capabilities", capabilities),
        ("free_text", free_text or ()),
    ):
        if isinstance(value, str):
            raise PolicyError(f"{what}= takes a collection of names, not a string")
    parts: list[ScopeRule] = []
    scope_list = tuple(scopes)
    if scope_list:
        parts.append(all_of(*scope_list))
    any_list = tuple(any_scopes)
    if any_list:
        parts.append(any_of(*any_list))
    rule = None
    for part in parts:
        rule = part if rule is None else rule & part
    caps = frozenset(capabilities)
    if any(not isinstance(c, str) or not c for c in caps):
        raise PolicyError("capabilities must be non-empty strings")
    if exposure is not None and exposure not in _EXPOSURES:
        raise PolicyError("exposure must be 'public' or 'internal'")
    return ToolSpec(
        name=name,
        rule=rule,
        capabilities=caps,
        data=data,
        exposure=exposure,
        untrusted_output=untrusted_output,
        free_text=None if free_text is None else _free_text(free_text),
    )


def _free_text(names: Iterable[str]) -> frozenset[str]:
    found = frozenset(names)
    if any(not isinstance(n, str) or not n or len(n) > 256 for n in found):
        raise PolicyError(
            "free_text= takes parameter names (non-empty strings of at most "
            "256 characters), e.g. free_text=['subject', 'body']"
        )
    return found
