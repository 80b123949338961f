"""The ``resources:`` and ``prompts:`` sections of a policy.

MCP servers expose resources (read by URI) and prompts (got by name) besides
tools. Each is declared like a tool, with the same meaning::

    resources:
      docs://public/{name}:  {data: public, exposure: public}
      docs://hr/{name}:      {scopes: [hr:read], data: confidential}
      file:///kb/{+path}:    {scopes: [kb:read], data: internal}
    prompts:
      summarise:             {data: public}
      incident_report:       {scopes: [incidents:write], data: internal}

A resource key is a URI or an RFC 6570 URI template (``{name}``: one path
segment, ``{+path}``: one or more, a trailing ``{?a,b}``: a query); see
:mod:`aiinvariants._internal.resource_uris` for the canonical form both
sides are compared in. Two keys with the same canonical form are refused.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StrictBool

from aiinvariants._internal.policy_types import Label, Scope
from aiinvariants._internal.resource_uris import ResourceURIError, parse_key
from aiinvariants.policy._sections import Exposure, _Section

__all__ = ["PromptPolicy", "ResourceKey", "ResourcePolicy"]


def check_resource_key(value: str) -> str:
    """A resource URI or URI template the matcher can compile."""
    try:
        parse_key(value)
    except ResourceURIError as exc:
        raise ValueError(str(exc)) from None
    return value


ResourceKey = Annotated[str, AfterValidator(check_resource_key)]
"""A resource URI (``docs://public/faq``) or URI template (``docs://{name}``)."""


class ResourcePolicy(_Section):
    """What reading one resource (or every resource of a template) needs.

    Attributes:
        scopes: every one of these scopes is needed.
        any_scopes: when non-empty, at least one of these is needed as well.
        data: the highest classification it returns; a ceiling on what a
            read may return. None: undeclared, treated as the highest label.
        exposure: overrides the app's exposure (the stricter one wins).
        enabled: a disabled resource is refused.
        untrusted_output: its content may carry injected instructions and
            marks an agent run untrusted (I12); ``false`` declares it trusted.
    """

    scopes: tuple[Scope, ...] = ()
    any_scopes: tuple[Scope, ...] = ()
    data: Label | None = None
    exposure: Exposure | None = None
    enabled: StrictBool = True
    untrusted_output: StrictBool = True


class PromptPolicy(ResourcePolicy):
    """What getting one prompt needs; the same fields as a resource."""
