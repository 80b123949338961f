"""Guarded resources and prompts: read like tools are called.

MCP servers hand models resources (read by URI) and prompts (got by name).
Both carry data, so both are decided like a tool call, against the
``resources:`` and ``prompts:`` sections of the policy, by the same rules
(:mod:`aiinvariants.tools`):

1. ``resource_uri_invalid`` - the URI does not parse in the one canonical
   form (see :mod:`aiinvariants._internal.resource_uris`): controls,
   ``\\``, ``{``, a fragment, userinfo, ``.``/``..`` or empty segments, a
   template variable that decodes to ``/`` or ``..``.
2. ``resource_unknown`` / ``prompt_unknown`` - nothing in the policy (nor
   the code's ``spec``) declares it: an undeclared resource is refused.
3. ``resource_disabled`` / ``prompt_disabled`` - declared ``enabled: false``.
4. ``authentication_required`` (I2) - anonymous caller, internal app or
   entry, or data above public.
5. ``scope_missing`` (I1) - a scope it needs was not delegated.
6. ``clearance_unknown`` / ``clearance_below_data`` (I1).

A URI is looked up by precedence: an exact key first; else the most
specific matching template (the most literal characters); templates equally
specific that all match are all applied (scopes AND-ed, the higher data
level and the stricter exposure win). A declaration in code (``spec``) is
joined with the policy's the same way, so code cannot weaken the policy.

Allowed reads are audited when the audit log is active; every denial is. In
an :func:`~aiinvariants.taint.agent_run`, a read marks the run private when
the data is not public, and untrusted unless the entry is declared
``untrusted_output: false``. Denials and audit events name the *policy key*
(``docs://public/{name}``), never the concrete URI a caller sent.

The declared data level is a ceiling on what a read returns:
:func:`capped_resource` and :func:`check_read_result` withhold a result
carrying a label above it (``mislabelled_source``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn

from pydantic import BaseModel

from aiinvariants._errors import AccessDenied, PolicyError
from aiinvariants._internal.resource_uris import (
    ResourceURIError,
    Template,
    canonical_uri,
    parse_key,
)
from aiinvariants._internal.tool_results import SCALARS, UNREADABLE, capped, labels_in
from aiinvariants._principal import Principal, current_principal
from aiinvariants._scopes import ScopeRule, all_of, any_of
from aiinvariants.taint import current_run
from aiinvariants.tools import (
    _Call,
    _Effective,
    _rule_authentication,
    _rule_clearance,
    _rule_scopes,
    tool_spec,
)

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants.policy import Policy
    from aiinvariants.policy._resources import ResourcePolicy

__all__ = [
    "RESOURCE_CODES",
    "ResourceSpec",
    "capped_resource",
    "check_ceiling",
    "check_prompt",
    "check_read_result",
    "check_resource",
    "check_resource_template",
    "resource_level",
    "resource_spec",
    "scopes_supported",
]

#: Stable codes of resource and prompt denials, and their invariant.
RESOURCE_CODES: Final[Mapping[str, str]] = {
    "resource_uri_invalid": "I1",
    "resource_unknown": "I1",
    "resource_disabled": "I1",
    "prompt_unknown": "I1",
    "prompt_disabled": "I1",
    "authentication_required": "I2",
    "scope_missing": "I1",
    "clearance_unknown": "I1",
    "clearance_below_data": "I1",
    "mislabelled_source": "I1",
}

RESOURCE: Final = "resource"
_MAX_EMBED_NODES: Final = 100_000
_MAX_EMBED_DEPTH: Final = 32
PROMPT: Final = "prompt"


@dataclass(frozen=True)
class ResourceSpec:
    """What one resource (or template) or prompt needs, as declared in code.

    Attributes:
        key: the resource URI or URI template, or the prompt name.
        rule: the scopes it needs, or None.
        data: the highest classification it returns; None = undeclared.
        exposure: ``public`` / ``internal``; None = the policy decides.
        untrusted_output: None lets the policy decide (untrusted by default).
    """

    key: str
    rule: ScopeRule | None = None
    data: str | None = None
    exposure: str | None = None
    untrusted_output: bool | None = None


def resource_spec(
    key: str,
    *,
    scopes: Iterable[str] = (),
    any_scopes: Iterable[str] = (),
    data: str | None = None,
    exposure: str | None = None,
    untrusted_output: bool | None = None,
) -> ResourceSpec:
    """Build and validate a :class:`ResourceSpec` (a resource or a prompt).

    Raises:
        PolicyError: a malformed key, scope or exposure.
    """
    if not isinstance(key, str) or not key:
        raise PolicyError("a resource or prompt needs a non-empty URI or name")
    # The scope and exposure checks of a tool declaration, on a stand-in name.
    checked = tool_spec(
        "resource", scopes=scopes, any_scopes=any_scopes, exposure=exposure
    )
    return ResourceSpec(
        key=key,
        rule=checked.rule,
        data=data,
        exposure=exposure,
        untrusted_output=untrusted_output,
    )


def scopes_supported(policy: Policy) -> tuple[str, ...]:
    """Every scope ``policy`` names, sorted: RFC 9728 ``scopes_supported``."""
    return policy.scopes_supported


# -- looking a URI up in the policy ---------------------------------------------------


@dataclass(frozen=True)
class _Index:
    exact: Mapping[str, tuple[str, ResourcePolicy]]
    templates: tuple[tuple[Template, str, ResourcePolicy], ...]


_CACHE_SIZE: Final = 4096
_indexes: dict[int, tuple[Policy, _Index]] = {}
_effective_cache: dict[tuple[Any, ...], tuple[Policy, _Effective | None]] = {}


def _index(policy: Policy) -> _Index:
    hit = _indexes.get(id(policy))
    if hit is not None and hit[0] is policy:
        return hit[1]
    exact: dict[str, tuple[str, ResourcePolicy]] = {}
    templates: list[tuple[Template, str, ResourcePolicy]] = []
    for key, entry in policy.resources.items():
        parsed = parse_key(key)  # validated with the policy: cannot fail
        if isinstance(parsed, str):
            exact[parsed] = (key, entry)
        else:
            templates.append((parsed, key, entry))
    index = _Index(exact, tuple(templates))
    if len(_indexes) >= _CACHE_SIZE:
        _indexes.clear()
    _indexes[id(policy)] = (policy, index)
    return index


def _lookup(policy: Policy, canonical: str) -> list[tuple[str, ResourcePolicy]]:
    """The entries deciding ``canonical``: exact, else the most specific."""
    index = _index(policy)
    hit = index.exact.get(canonical)
    if hit is not None:
        return [hit]
    best: list[tuple[str, ResourcePolicy]] = []
    best_literal = -1
    for template, key, entry in index.templates:
        # A template whose variable holds an unsafe value raises here: the
        # URI is refused, never passed on to a less specific template.
        if template.literal < best_literal or not template.match(canonical):
            continue
        if template.literal > best_literal:
            best, best_literal = [], template.literal
        best.append((key, entry))
    return best


def _join(
    policy: Policy,
    kind: str,
    entries: list[tuple[str, ResourcePolicy]],
    spec: ResourceSpec | None,
) -> _Effective:
    rule: ScopeRule | None = spec.rule if spec is not None else None
    labels: list[str | None] = []
    exposures: list[str] = []
    untrusted: list[bool] = []
    enabled = True
    if spec is not None:
        if spec.data is not None:
            labels.append(spec.data)
        if spec.exposure is not None:
            exposures.append(spec.exposure)
        if spec.untrusted_output is not None:
            untrusted.append(spec.untrusted_output)
    for _, entry in entries:
        for part in (
            all_of(*entry.scopes) if entry.scopes else None,
            any_of(*entry.any_scopes) if entry.any_scopes else None,
        ):
            if part is not None:
                rule = part if rule is None else rule & part
        labels.append(entry.data)
        if entry.exposure is not None:
            exposures.append(entry.exposure)
        if "untrusted_output" in entry.model_fields_set:
            untrusted.append(entry.untrusted_output)
        enabled = enabled and entry.enabled
    known = [label for label in labels if label in policy.classifications]
    if not labels or len(known) != len(labels):
        data = policy.highest_label  # undeclared or unknown: fail closed
    else:
        data = max(known, key=policy.rank)
    internal = "internal" in exposures or policy.exposure == "internal"
    exposure = "internal" if internal else "public"
    name = " ".join(sorted(key for key, _ in entries)) or (
        spec.key if spec is not None else ""
    )
    return _Effective(
        name=name,
        rule=rule,
        capabilities=frozenset(),
        data=data,
        exposure=exposure,
        untrusted_output=any(untrusted) or not untrusted,
        enabled=enabled,
        declared=bool(entries),
        forbidden=frozenset(),
        confirm=frozenset(),
        public=exposure == "public" and data == policy.public_label,
        kind=kind,
    )


def _cached(
    key: tuple[Any, ...], policy: Policy, make: Callable[[], _Effective | None]
) -> _Effective | None:
    hit = _effective_cache.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    value = make()
    if len(_effective_cache) >= _CACHE_SIZE:
        _effective_cache.clear()
    _effective_cache[key] = (policy, value)
    return value


def _key_entries(policy: Policy, key: str | None) -> list[tuple[str, ResourcePolicy]]:
    """The policy entry declared under ``key`` itself (a URI or a template)."""
    if key is None:
        return []
    try:
        parsed = parse_key(key)
    except ResourceURIError:
        return []  # a template form the policy cannot declare: no entry
    index = _index(policy)
    if isinstance(parsed, str):
        hit = index.exact.get(parsed)
        return [] if hit is None else [hit]
    return [(k, e) for t, k, e in index.templates if t.key == parsed.key]


def _merge(
    *groups: list[tuple[str, ResourcePolicy]],
) -> list[tuple[str, ResourcePolicy]]:
    merged: dict[str, ResourcePolicy] = {}
    for group in groups:
        for key, entry in group:
            merged.setdefault(key, entry)
    return list(merged.items())


def _resource_effective(
    policy: Policy,
    canonical: str | None,
    spec: ResourceSpec | None,
    route: str | None = None,
) -> _Effective | None:
    def make() -> _Effective | None:
        entries = _merge(
            _lookup(policy, canonical) if canonical is not None else [],
            _key_entries(policy, route),
            _key_entries(policy, spec.key if spec is not None else None),
        )
        if not entries and spec is None:
            return None
        return _join(policy, RESOURCE, entries, spec)

    return _cached((id(policy), RESOURCE, canonical, spec, route), policy, make)


def _prompt_effective(
    policy: Policy, name: str, spec: ResourceSpec | None
) -> _Effective | None:
    def make() -> _Effective | None:
        entry = policy.prompts.get(name)
        if entry is None and spec is None:
            return None
        return _join(policy, PROMPT, [] if entry is None else [(name, entry)], spec)

    return _cached((id(policy), PROMPT, name, spec), policy, make)


# -- the decision ---------------------------------------------------------------------


def _fingerprint(value: object) -> str:
    text = value if isinstance(value, str) else repr(type(value))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def _refuse_early(
    guard: Guard, who: Principal, record: bool, denial: AccessDenied, what: object
) -> NoReturn:
    if not record:
        raise denial
    guard.audit.deny(denial, principal=who, details={"fingerprint": _fingerprint(what)})


def _refuse_undeclared(
    guard: Guard, who: Principal, record: bool, what: object, kind: str, noun: str
) -> NoReturn:
    """Refuse ``what``: no policy entry declares it (``resource_unknown``...)."""
    _refuse_early(
        guard,
        who,
        record,
        AccessDenied(
            f"{noun} is not declared in the policy ({kind}s:)",
            code=f"{kind}_unknown",
            subject=who.subject,
            resource=f"{kind}.<unknown>",
        ),
        what,
    )


def _rule_enabled(call: _Call) -> None:
    if call.tool.enabled:
        return
    denial = AccessDenied(
        f"{call.tool.kind} {call.name!r} is disabled by the policy",
        code=f"{call.tool.kind}_disabled",
        subject=call.who.subject,
        resource=call.resource,
    )
    if not call.record:
        raise denial
    call.guard.audit.deny(denial, principal=call.who)


#: The rules of a read, in order: a tool call's, less capabilities and taint.
_RULES: Final[tuple[Callable[[_Call], None], ...]] = (
    _rule_enabled,
    _rule_authentication,
    _rule_scopes,  # before clearance: a missing scope is a step-up (403)
    _rule_clearance,
)


def _decide(
    guard: Guard,
    effective: _Effective,
    who: Principal,
    record: bool,
    arguments: Mapping[str, Any] | None,
) -> Principal:
    resource = f"{effective.kind}.{effective.name}"
    call = _Call(guard, effective.name, resource, who, effective, record, arguments)
    for rule in _RULES:
        rule(call)
    if not record:
        return who
    if guard.audit.active:
        guard.audit.record(
            invariant="I1",
            decision="allow",
            reason=f"{effective.kind}_allowed",
            resource=resource,
            details={"data": effective.data},
            principal=who,
        )
    run = current_run()
    if run is not None:
        if effective.data != guard.policy.public_label:
            run.mark_private(resource)
        if effective.untrusted_output:
            run.mark_untrusted(resource)
    return who


def check_resource(
    guard: Guard,
    uri: str,
    *,
    spec: ResourceSpec | None = None,
    principal: Principal | None = None,
    record: bool = True,
    route: str | None = None,
) -> Principal:
    """Decide whether the principal may read resource ``uri`` now.

    Stops a caller with no (or too few) scopes from reading what a resource
    needs, an anonymous caller from reaching non-public data (I2), and a
    URI spelled another way (case, ``%41``, ``..``, ``%2F`` in a variable)
    from reaching an entry other than the one its canonical form names.

    Args:
        guard: whose policy decides and whose audit log records.
        uri: the concrete URI requested.
        spec: the code's declaration of the resource (or of the template
            the server routes ``uri`` to), joined with the policy's.
        principal: defaults to the current principal.
        record: False for a dry run (``resources/list`` filtering): nothing
            is audited and the run is not marked.
        route: the URI or URI template the server really answers ``uri``
            with (the SDK's first matching template, say). Its own policy
            entry is applied too, so a server whose routing differs from
            the policy's precedence is decided by both (the stricter wins).

    Returns:
        the principal the decision was made for.

    Raises:
        AccessDenied: ``resource_uri_invalid``, ``resource_unknown``,
            ``resource_disabled``, ``clearance_below_data``,
            ``clearance_unknown``.
        AuthenticationRequired: anonymous caller of non-public data (I2).
        ScopeDenied: a needed scope was not delegated (I1).
    """
    who = current_principal() if principal is None else principal
    try:
        canonical = canonical_uri(uri)
        effective = _resource_effective(guard.policy, canonical, spec, route)
    except ResourceURIError as exc:
        _refuse_early(
            guard,
            who,
            record,
            AccessDenied(
                f"the resource URI is refused: {exc}",
                code="resource_uri_invalid",
                subject=who.subject,
                resource="resource.<invalid>",
            ),
            uri,
        )
    if effective is None:
        _refuse_undeclared(guard, who, record, canonical, RESOURCE, "the resource")
    return _decide(guard, effective, who, record, None)


def check_prompt(
    guard: Guard,
    name: str,
    *,
    spec: ResourceSpec | None = None,
    principal: Principal | None = None,
    record: bool = True,
    arguments: Mapping[str, Any] | None = None,
) -> Principal:
    """Decide whether the principal may get prompt ``name`` now.

    The same rules as :func:`check_resource`, against ``policy.prompts``
    (exact names only). ``arguments`` are the prompt's arguments by name.

    Raises:
        AccessDenied: ``prompt_unknown``, ``prompt_disabled``,
            ``clearance_below_data``, ``clearance_unknown``.
        AuthenticationRequired: anonymous caller of non-public data (I2).
        ScopeDenied: a needed scope was not delegated (I1).
    """
    who = current_principal() if principal is None else principal
    effective = (
        _prompt_effective(guard.policy, name, spec) if isinstance(name, str) else None
    )
    if effective is None:
        _refuse_undeclared(guard, who, record, name, PROMPT, "the prompt")
    return _decide(guard, effective, who, record, arguments)


# -- the declared data level is a ceiling on what a read returns ---------------------


def check_resource_template(
    guard: Guard,
    template: str,
    *,
    spec: ResourceSpec | None = None,
    principal: Principal | None = None,
    record: bool = True,
) -> Principal:
    """Decide whether the principal may read what URI template ``template`` serves.

    For ``resources/templates/list`` filtering and completions of a template's
    arguments: the template is decided by the policy entry declared under
    that very template (and ``spec``); a template no entry declares is
    refused (``resource_unknown``).

    Raises:
        the same denials as :func:`check_resource`.
    """
    who = current_principal() if principal is None else principal
    effective = _resource_effective(guard.policy, None, spec, template)
    if effective is None or (not effective.declared and spec is None):
        _refuse_undeclared(
            guard, who, record, template, RESOURCE, "the resource template"
        )
    return _decide(guard, effective, who, record, None)


def _ceiling(
    guard: Guard,
    *,
    spec: ResourceSpec | None,
    kind: str,
    uri: str | None,
    route: str | None,
    prompt: str | None,
) -> _Effective | None:
    policy = guard.policy
    if kind == PROMPT or prompt is not None:
        name = prompt if prompt is not None else spec.key if spec else None
        return None if name is None else _prompt_effective(policy, name, spec)
    try:
        canonical = canonical_uri(uri) if uri is not None else None
    except ResourceURIError:
        canonical = None
    return _resource_effective(policy, canonical, spec, route)


def check_read_result(
    guard: Guard,
    result: Any,
    *,
    spec: ResourceSpec | None = None,
    kind: str = RESOURCE,
    uri: str | None = None,
    route: str | None = None,
    prompt: str | None = None,
    level_of: Callable[[str], str | None] | None = None,
) -> None:
    """Withhold ``result`` when it carries data above the declared level.

    The data level is the one :func:`check_resource` (``uri``, ``route``,
    ``spec``) or :func:`check_prompt` (``prompt`` or ``kind="prompt"`` with
    ``spec``) decided with. Labels are read at any depth, in JSON text too,
    and so are the resources the result embeds (see :func:`check_ceiling`).

    Raises:
        AccessDenied: ``mislabelled_source`` (audited); a result too large
            or deep to read counts as above every level.
    """
    if isinstance(result, SCALARS) and not isinstance(result, str | bytes | bytearray):
        return
    effective = _ceiling(
        guard, spec=spec, kind=kind, uri=uri, route=route, prompt=prompt
    )
    if effective is None:
        return
    check_ceiling(
        guard,
        result,
        kind=effective.kind,
        name=effective.name,
        data=effective.data,
        uri=uri if effective.kind == RESOURCE else None,
        level_of=level_of,
    )


def _contents_in(result: Any) -> tuple[list[object], list[bytes]]:
    """The URIs and decoded blobs of the resource contents ``result`` carries.

    An MCP ``resource`` content block (``EmbeddedResource``) and the
    ``contents`` of a ``resources/read`` result are mappings (or models)
    with a ``uri`` and a ``text`` or ``blob`` (base64). A result too large
    or deep to read gives :data:`UNREADABLE` as a URI.
    """
    uris: list[object] = []
    blobs: list[bytes] = []
    todo: list[tuple[Any, int]] = [(result, 0)]
    nodes = 0
    while todo:
        item, depth = todo.pop()
        if isinstance(item, BaseModel):
            # Python mode: raw bytes stay bytes (a FastMCP binary read).
            item = item.model_dump(by_alias=True)
        if not isinstance(item, Mapping | list | tuple):
            continue
        nodes += 1
        if nodes > _MAX_EMBED_NODES or depth > _MAX_EMBED_DEPTH:
            return [UNREADABLE], []
        if isinstance(item, Mapping):
            uri, blob = item.get("uri"), item.get("blob")
            if (
                uri is not None
                and not isinstance(uri, Mapping | list | tuple | bytes)
                and ("text" in item or "blob" in item)
            ):
                uris.append(str(uri))
            if isinstance(blob, bytes | bytearray):
                blobs.append(bytes(blob))
            elif isinstance(blob, str):
                with contextlib.suppress(binascii.Error, ValueError):
                    blobs.append(base64.b64decode(blob))
            todo.extend((value, depth + 1) for value in item.values())
        else:
            todo.extend((value, depth + 1) for value in item)
    return uris, blobs


def resource_level(
    guard: Guard,
    uri: str,
    *,
    spec: ResourceSpec | None = None,
    route: str | None = None,
) -> str | None:
    """The data level a read of ``uri`` is decided with; None if undeclared.

    ``spec`` and ``route`` as for :func:`check_resource`. A URI the
    canonical form refuses has no level (its labels decide).
    """
    try:
        effective = _resource_effective(guard.policy, canonical_uri(uri), spec, route)
    except ResourceURIError:
        return None
    return None if effective is None else effective.data


def check_ceiling(
    guard: Guard,
    result: Any,
    *,
    kind: str,
    name: str,
    data: str,
    uri: str | None = None,
    level_of: Callable[[str], str | None] | None = None,
) -> None:
    """Withhold ``result`` of ``kind`` ``name`` carrying data above ``data``.

    Above it: a classification label above ``data`` (or unknown), and a
    resource the result embeds whose URI the policy declares above
    ``data`` - a prompt, tool or resource handing out *another* resource's
    contents (``uri``, the resource read, is that read's own contents).
    Labels inside a base64 ``blob`` of resource contents are read too.
    ``level_of(uri)`` gives an embedded URI's level (default: the policy's,
    :func:`resource_level`); an integration that knows the server's routing
    and the code's declarations passes its own.

    Raises:
        AccessDenied: ``mislabelled_source`` (audited).
    """
    policy = guard.policy
    if data == policy.highest_label:
        return
    ceiling = policy.rank(data)
    known = policy.classifications
    uris, blobs = _contents_in(result)
    above = [
        label
        for label in [*labels_in(result), *labels_in(blobs)]
        if not isinstance(label, str)
        or label not in known
        or known.index(label) > ceiling
    ]
    own = None
    if uri is not None:
        with contextlib.suppress(ResourceURIError):
            own = canonical_uri(uri)
    for embedded in uris:
        if not isinstance(embedded, str):
            above.append(embedded)
            continue
        with contextlib.suppress(ResourceURIError):
            if own is not None and canonical_uri(embedded) == own:
                continue
        level = (
            resource_level(guard, embedded) if level_of is None else level_of(embedded)
        )
        if level is not None and policy.rank(level) > ceiling:
            above.append(level)
    if above:
        who = current_principal()
        guard.audit.deny(
            AccessDenied(
                f"{kind} {name!r} returned data above its "
                f"declared level {data!r}; the result is withheld",
                code="mislabelled_source",
                invariant="I1" if who.authenticated else "I2",
                subject=who.subject,
                resource=f"{kind}.{name}",
            ),
            principal=who,
            details={"data": data, "above": len(above)},
        )


def capped_resource(
    guard: Guard, spec: ResourceSpec, fn: Any, *, kind: str = RESOURCE
) -> Any:
    """``fn`` whose every result is checked by :func:`check_read_result`."""
    return capped(fn, functools.partial(_check, guard, spec, kind))


def _check(guard: Guard, spec: ResourceSpec, kind: str, result: Any) -> None:
    check_read_result(guard, result, spec=spec, kind=kind)
