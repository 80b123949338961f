"""Guarded tools: scopes, forbidden capabilities, data level, exposure, taint.

Tools are where an AI system acts. :func:`guarded_tool` (``guard.tool(...)``)
wraps a plain function (sync, async, generator) so that every call is decided
by :func:`check_tool` against the guard's *current* policy:

1. ``tool_disabled`` - the policy declares the tool with ``enabled: false``.
2. ``capability_forbidden`` (I3) - the tool has a capability the policy lists
   under ``capabilities.forbidden`` (``life_safety`` by default). Checked when
   the tool is registered (:class:`PolicyError`) *and* on every call
   (:class:`ToolForbidden`), so a policy changed after registration still
   holds. Capabilities stick to the *code*, not the name: every layer the
   callable runs (``__wrapped__`` chains, ``functools.partial``, bound
   methods, a callable instance's class and ``__call__``, a function's code
   object) is checked, so the same code under another name, a new partial,
   a new bound method or a new instance is refused too.
3. ``authentication_required`` (I2) - an anonymous caller reaches a tool
   whose exposure is ``internal`` (the app's ``exposure: internal`` wins over
   a tool's ``public``) or whose data is not public. A tool that declares no
   data level is treated as returning the highest label.
4. ``scope_missing`` (I1) - a scope the tool needs was not delegated; the
   scopes come from the verified principal, never from the call's arguments.
5. ``clearance_unknown`` / ``clearance_below_data`` (I1) - the principal's
   clearance, resolved by the one function every enforcement point uses
   (``Principal.clearance`` if it is a policy label, else the policy's
   clearance map; an unknown label is refused), is below the tool's data.
6. ``injected_argument`` / ``tainted_run_needs_confirmation`` (I12) - a
   consequential capability in a run that read untrusted content: an
   argument found only in untrusted content is refused (asked when it comes
   from a record the user's request names: ``delegated``); one not traced
   to the user's request or trusted data needs confirmation. See
   :mod:`aiinvariants.taint`.

Each rule is a small function in ``_RULES``; the first that refuses decides.
A tool declared in the policy and decorated in code gets the union of both
declarations (scopes are AND-ed, capabilities joined, the higher data level
and the stricter exposure win), so code cannot weaken the policy. Every
decision is recorded in the guard's audit log.

After an allowed call inside an :func:`~aiinvariants.taint.agent_run`, the
run is marked private when the tool's data is not public, and untrusted when
the tool's output is untrusted (the default); :func:`capped_tool` records
what the tool returns for argument provenance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn

from aiinvariants._errors import (
    AccessDenied,
    AuthenticationRequired,
    InvariantViolation,
    ScopeDenied,
    ToolForbidden,
)
from aiinvariants._internal.authority import enforce_caller
from aiinvariants._internal.code_layers import UNFOLLOWED
from aiinvariants._internal.code_layers import call_caps as _call_caps
from aiinvariants._internal.provenance import DELEGATED, decide, delegation_sources
from aiinvariants._internal.tool_results import SCALARS, capped, labels_in
from aiinvariants._principal import Principal, current_principal
from aiinvariants._scopes import ScopeRule, all_of, any_of

# The declaration (ToolSpec) and the registration path live in _tools;
# every name stays importable from here.
from aiinvariants._tools.registration import (
    GuardedTool,
    guarded_tool,
    register_tool,
)
from aiinvariants._tools.registration import (
    check_registration as check_registration,
)
from aiinvariants._tools.spec import ToolSpec, tool_spec
from aiinvariants.taint import (
    _FROM_CONTEXT,
    INJECTED,
    TRACED,
    AgentRun,
    NamedCall,
    _FromContext,
    current_run,
    take_named_call,
)

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants.policy import Policy

__all__ = [
    "TOOL_CODES",
    "GuardedTool",
    "ToolSpec",
    "call_checked_tool",
    "capped_tool",
    "check_tool",
    "guarded_tool",
    "record_tool_result",
    "register_tool",
    "tool_spec",
]

#: Stable codes of tool denials, and the invariant each belongs to.
TOOL_CODES: Final[Mapping[str, str]] = {
    "tool_unknown": "I3",
    "tool_disabled": "I3",
    "capability_forbidden": "I3",
    "authentication_required": "I2",
    "clearance_below_data": "I1",
    "scope_missing": "I1",
    "tainted_run_needs_confirmation": "I12",
    "injected_argument": "I12",
    "clearance_unknown": "I1",
    "mislabelled_source": "I1",
}


@dataclass(frozen=True)
class _Effective:
    name: str
    rule: ScopeRule | None
    capabilities: frozenset[str]
    data: str
    exposure: str
    untrusted_output: bool
    enabled: bool
    declared: bool
    forbidden: frozenset[str]
    confirm: frozenset[str]
    public: bool
    #: what is decided: ``tool``, or ``resource``/``prompt`` (see resources.py).
    kind: str = "tool"
    trusted_fields: frozenset[str] = frozenset()
    container_fields: frozenset[str] = frozenset()
    #: declared free-text parameters, or None: named like prose (I12)
    free_text: frozenset[str] | None = None


_EFFECTIVE_CACHE_SIZE: Final = 4096
_effective_cache: dict[tuple[Any, ...], tuple[Policy, _Effective | None]] = {}


def _effective(
    policy: Policy, name: str, spec: ToolSpec | None, extra_caps: frozenset[str]
) -> _Effective | None:
    # Policies are immutable: the joined declaration is computed once per
    # (policy, tool) and reused, so a call costs a dict lookup. The policy
    # object is kept with the entry so a recycled id() never matches.
    key = (id(policy), name, spec, extra_caps)
    hit = _effective_cache.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    value = _compute_effective(policy, name, spec, extra_caps)
    if len(_effective_cache) >= _EFFECTIVE_CACHE_SIZE:
        _effective_cache.clear()
    _effective_cache[key] = (policy, value)
    return value


def _compute_effective(
    policy: Policy, name: str, spec: ToolSpec | None, extra_caps: frozenset[str]
) -> _Effective | None:
    declared = policy.tools.get(name)
    if declared is None and spec is None:
        return None
    rule = spec.rule if spec is not None else None
    caps = set(extra_caps)
    labels: list[str] = []
    exposures: list[str] = []
    untrusted: list[bool] = []
    if spec is not None:
        caps |= spec.capabilities
        if spec.data is not None:
            labels.append(spec.data)
        if spec.exposure is not None:
            exposures.append(spec.exposure)
        if spec.untrusted_output is not None:
            untrusted.append(spec.untrusted_output)
    enabled = True
    trusted_fields: frozenset[str] = frozenset()
    container_fields: frozenset[str] = frozenset()
    free_text = spec.free_text if spec is not None else None
    if declared is not None:
        trusted_fields = frozenset(declared.trusted_fields)
        container_fields = frozenset(declared.container_fields)
        if declared.free_text is not None:
            # Code cannot weaken the policy: prose only where both say so.
            policy_text = frozenset(declared.free_text)
            free_text = policy_text if free_text is None else free_text & policy_text
        if declared.scopes:
            part = all_of(*declared.scopes)
            rule = part if rule is None else rule & part
        if declared.any_scopes:
            part = any_of(*declared.any_scopes)
            rule = part if rule is None else rule & part
        caps |= set(declared.capabilities)
        if declared.data is not None:
            labels.append(declared.data)
        if declared.exposure is not None:
            exposures.append(declared.exposure)
        if "untrusted_output" in declared.model_fields_set:
            untrusted.append(declared.untrusted_output)
        enabled = declared.enabled
    known = [label for label in labels if label in policy.classifications]
    if not labels or len(known) != len(labels):
        data = policy.highest_label  # undeclared or unknown: fail closed
    else:
        data = max(known, key=policy.rank)
    # The stricter exposure wins, the app's included: a tool cannot open an
    # internal app to anonymous callers.
    if "internal" in exposures or policy.exposure == "internal":
        exposure = "internal"
    else:
        exposure = "public"
    capset = frozenset(caps)
    return _Effective(
        name=name,
        rule=rule,
        capabilities=capset,
        data=data,
        exposure=exposure,
        # Untrusted unless declared trusted; one "untrusted" wins.
        untrusted_output=any(untrusted) or not untrusted,
        enabled=enabled,
        declared=declared is not None,
        forbidden=_forbidden(capset, policy),
        confirm=capset & frozenset(policy.capabilities.confirm),
        public=exposure == "public" and data == policy.public_label,
        trusted_fields=trusted_fields,
        container_fields=container_fields,
        free_text=free_text,
    )


def _forbidden(caps: frozenset[str], policy: Policy) -> frozenset[str]:
    # Code whose layers could not all be followed may hide anything: it is
    # refused wherever the policy forbids some capability.
    forbidden = frozenset(policy.capabilities.forbidden)
    found = caps & forbidden
    return found | {UNFOLLOWED} if forbidden and UNFOLLOWED in caps else found


@dataclass(slots=True)
class _Call:
    """One tool call being decided: what every rule reads."""

    guard: Guard
    name: str
    resource: str
    who: Principal
    tool: _Effective
    record: bool
    arguments: Mapping[str, Any] | None = None
    #: why an approved call was asked (I12), for its audit event
    asked: dict[str, str | int | float | bool | None] | None = None


def _refuse(
    call: _Call,
    denial: InvariantViolation,
    details: Mapping[str, str | int | float | bool | None] | None = None,
) -> NoReturn:
    if not call.record:
        raise denial
    call.guard.audit.deny(denial, principal=call.who, details=details)


def _rule_enabled(call: _Call) -> None:
    if not call.tool.enabled:
        _refuse(
            call,
            ToolForbidden(
                f"tool {call.name!r} is disabled by the policy",
                code="tool_disabled",
                subject=call.who.subject,
                resource=call.resource,
            ),
        )


def _rule_capabilities(call: _Call) -> None:
    forbidden = call.tool.forbidden
    if forbidden:
        _refuse(
            call,
            ToolForbidden(
                f"tool {call.name!r} has a capability AI may never reach: "
                + ", ".join(sorted(forbidden)),
                code="capability_forbidden",
                subject=call.who.subject,
                resource=call.resource,
            ),
            {"capabilities": " ".join(sorted(forbidden))},
        )


def _rule_authentication(call: _Call) -> None:
    if not call.who.authenticated and not call.tool.public:
        _refuse(
            call,
            AuthenticationRequired(
                f"{call.tool.kind} {call.name!r} needs an authenticated user",
                code="authentication_required",
                invariant="I2",
                subject=call.who.subject,
                resource=call.resource,
            ),
            {"data": call.tool.data, "exposure": call.tool.exposure},
        )


def _rule_clearance(call: _Call) -> None:
    _, authority = enforce_caller(
        call.guard, resource=call.resource, principal=call.who, record=call.record
    )
    policy = call.guard.policy
    if authority.rank < policy.rank(call.tool.data):
        _refuse(
            call,
            AccessDenied(
                f"{call.tool.kind} {call.name!r} returns data above the user's "
                "clearance",
                code="clearance_below_data",
                subject=call.who.subject,
                resource=call.resource,
            ),
            {"data": call.tool.data, "clearance": authority.clearance},
        )


def _rule_scopes(call: _Call) -> None:
    rule, who = call.tool.rule, call.who
    if rule is None:
        return
    if call.record:
        call.guard.check_scopes(rule, resource=call.resource, principal=who)
    elif not who.authenticated:
        raise AuthenticationRequired(
            "the call needs an authenticated user",
            subject=who.subject,
            resource=call.resource,
        )
    elif not rule.allows(who.scopes):
        required = rule.closest(who.scopes)
        raise ScopeDenied(
            "the user did not delegate a scope this call needs",
            required=sorted(required),
            missing=sorted(required - who.scopes),
            alternatives=(alt - who.scopes for alt in rule.alternatives),
            subject=who.subject,
            resource=call.resource,
        )


#: The rules of a tool call, in order; the first that refuses decides.
_RULES: Final[tuple[Callable[[_Call], None], ...]] = (
    _rule_enabled,
    _rule_capabilities,
    _rule_authentication,
    _rule_scopes,  # before clearance: a missing scope is a step-up (403)
    _rule_clearance,
)


def _needs_gate(call: _Call, run: AgentRun) -> bool:
    if call.guard.policy.capabilities.confirm_when == "untrusted":
        return run.untrusted
    return run.tainted


def _confirm_if_tainted(call: _Call) -> str | None:
    """I12: a consequential tool in a run that read untrusted content needs
    confirmation, unless its arguments trace back to the user's request or
    trusted data; one whose argument came from untrusted content only is
    refused (``injected: refuse``). Returns how the call passed."""
    confirm, run = call.tool.confirm, current_run()
    if not confirm or run is None or not _needs_gate(call, run):
        return None
    free_text = call.tool.free_text
    verdict, paths = decide(run, call.arguments, free_text=free_text)
    if verdict == TRACED:
        return "traced"
    details: dict[str, str | int | float | bool | None] = {
        "capabilities": " ".join(sorted(confirm)),
        "provenance": verdict,
        "arguments": " ".join(paths)[:500],
        "private_sources": " ".join(run.private_sources)[:500],
        "untrusted_sources": " ".join(run.untrusted_sources)[:500],
    }
    sources: tuple[str, ...] = ()
    if verdict == DELEGATED and call.arguments is not None:
        # Asked, not refused: the values came from a record the user's
        # request names; the user sees which one.
        sources = delegation_sources(run, call.arguments, free_text=free_text)
        details["delegated_from"] = " ".join(sources)[:500]
    capabilities = call.guard.policy.capabilities
    if (verdict == INJECTED and capabilities.injected == "refuse") or (
        verdict == DELEGATED and capabilities.delegated == "refuse"
    ):
        _refuse(
            call,
            ToolForbidden(
                f"tool {call.name!r} was called with an argument that came from "
                "untrusted content, not from the user's request or trusted "
                f"data ({', '.join(paths)[:200]})",
                code="injected_argument",
                invariant="I12",
                subject=call.who.subject,
                resource=call.resource,
            ),
            details,
        )
    if not run.confirm(
        call.name,
        confirm,
        call.who.subject,
        reason=verdict,
        arguments=paths,
        sources=sources,
    ):
        _refuse(
            call,
            ToolForbidden(
                f"tool {call.name!r} has a consequential capability and this run "
                "has read untrusted content; it needs confirmation",
                code="tainted_run_needs_confirmation",
                invariant="I12",
                subject=call.who.subject,
                resource=call.resource,
            ),
            details,
        )
    call.asked = details
    return "confirmed"


def _after_allowed(call: _Call, passed: str | None) -> None:
    guard, tool = call.guard, call.tool
    confirmed = passed == "confirmed"
    if passed is not None or guard.audit.active:
        details: dict[str, str | int | float | bool | None] = {"data": tool.data}
        if passed == "traced":
            details["provenance"] = "traced"
        elif confirmed and call.asked is not None:
            details.update(call.asked)
        guard.audit.record(
            invariant="I3" if passed is None else "I12",
            decision="allow",
            reason="tool_confirmed" if confirmed else "tool_allowed",
            resource=call.resource,
            details=details,
            principal=call.who,
        )
    run = current_run()
    if run is not None:
        # Whether this call reads a document the user's request names: its
        # result's content is then what the user handed the task to.
        run.note_call(call.resource, call.arguments)
        if tool.data != guard.policy.public_label:
            run.mark_private(call.resource)
        if tool.untrusted_output:
            run.mark_untrusted(call.resource)


def check_tool(
    guard: Guard,
    name: str,
    *,
    spec: ToolSpec | None = None,
    principal: Principal | None = None,
    extra_capabilities: Iterable[str] = (),
    record: bool = True,
    arguments: Mapping[str, Any] | None = None,
) -> Principal:
    """Decide whether the principal may call tool ``name`` now.

    The imperative form of :func:`guarded_tool`, also used by the MCP
    integrations. The tool is what the guard's current policy declares under
    ``name`` joined with ``spec`` (what the code declares); a tool known to
    neither is refused (``tool_unknown``). The decision is the list of small
    rules in ``_RULES``; the principal's clearance comes from the one
    resolution every enforcement point shares (an unknown clearance label is
    refused with ``clearance_unknown``, a missing one is what the policy's
    clearance map grants).

    Args:
        guard: whose policy decides and whose audit log records.
        name: the tool's name.
        spec: the code's declaration, if any.
        principal: defaults to the current principal.
        extra_capabilities: capabilities known from elsewhere (e.g. those
            that stick to the callable under another name).
        record: False for a dry run (``tools/list`` filtering): nothing is
            audited, the run is not marked, and a confirmation-needing tool
            is not refused for taint (listing is not calling).
        arguments: the arguments the tool is called with, by name, when the
            caller knows them; the run's provenance rules (I12) read them.

    Returns:
        the principal the decision was made for.

    Raises:
        ToolForbidden: unknown or disabled tool, forbidden capability (I3),
            or a tainted run without confirmation (I12).
        AuthenticationRequired: anonymous caller, non-public tool or
            internal app (I2).
        AccessDenied: clearance below the tool's data level, or unknown.
        ScopeDenied: a needed scope was not delegated (I1).
    """
    who = current_principal() if principal is None else principal
    resource = f"tool.{name}"
    extra = (
        extra_capabilities
        if isinstance(extra_capabilities, frozenset)
        else frozenset(extra_capabilities)
    )
    tool = _effective(guard.policy, name, spec, extra)
    if tool is None:
        denial = ToolForbidden(
            f"tool {name!r} is not declared",
            code="tool_unknown",
            subject=who.subject,
            resource=resource,
        )
        if not record:
            raise denial
        guard.audit.deny(denial, principal=who)
    call = _Call(guard, name, resource, who, tool, record, arguments)
    for rule in _RULES:
        rule(call)
    if record:
        _after_allowed(call, _confirm_if_tainted(call))
    return who


def call_checked_tool(
    guard: Guard,
    spec: ToolSpec,
    fn: Any,
    *,
    principal: Principal | None = None,
    record: bool = True,
    arguments: Mapping[str, Any] | None = None,
) -> Principal:
    """Decide a call of a tool registered with :func:`register_tool`.

    The capabilities are read again from every layer of ``fn`` at call
    time, so a capability forbidden after registration, or code swapped
    into the function since, is refused. ``record=False`` is a dry run, as
    for :func:`check_tool`.
    """
    return check_tool(
        guard,
        spec.name,
        spec=spec,
        principal=principal,
        extra_capabilities=_call_caps(fn),
        record=record,
        arguments=arguments,
    )


# -- the declared data level is a ceiling on what a tool returns ---------------------


def _check_result(guard: Guard, spec: ToolSpec, result: Any) -> None:
    if isinstance(result, SCALARS) and not isinstance(result, str | bytes | bytearray):
        return  # carries no label
    # The data level does not depend on capabilities: no layer walk here.
    tool = _effective(guard.policy, spec.name, spec, frozenset())
    if tool is None or tool.data == guard.policy.highest_label:
        return
    ceiling = guard.policy.rank(tool.data)
    known = guard.policy.classifications
    above = [
        label
        for label in labels_in(result)
        if not isinstance(label, str)
        or label not in known
        or known.index(label) > ceiling
    ]
    if above:
        who = current_principal()
        guard.audit.deny(
            AccessDenied(
                f"tool {spec.name!r} returned data above its declared level "
                f"{tool.data!r}; the result is withheld",
                code="mislabelled_source",
                invariant="I1" if who.authenticated else "I2",
                subject=who.subject,
                resource=f"tool.{spec.name}",
            ),
            principal=who,
            details={"data": tool.data, "above": len(above)},
        )


def record_tool_result(
    guard: Guard,
    name: str,
    result: Any,
    *,
    spec: ToolSpec | None = None,
    named: NamedCall | _FromContext | None = _FROM_CONTEXT,
) -> None:
    """Record what tool ``name`` returned in the current run (I12 provenance):
    untrusted content, or trusted data when the policy declares the tool's
    output (or some of its fields) trusted. Integrations that receive a
    tool's result themselves (an MCP client) call it; ``capped_tool`` does."""
    run = current_run()
    if run is None:
        return
    tool = _effective(guard.policy, name, spec, frozenset())
    run.record_result(
        result,
        source=f"tool.{name}",
        # A tool the policy does not know is untrusted (fail closed).
        untrusted=True if tool is None else tool.untrusted_output,
        trusted_fields=frozenset() if tool is None else tool.trusted_fields,
        container_fields=frozenset() if tool is None else tool.container_fields,
        named=named,
    )


def _record_result(
    guard: Guard,
    spec: ToolSpec,
    result: Any,
    named: NamedCall | _FromContext | None = _FROM_CONTEXT,
) -> None:
    # I12 provenance: what the tool returned is untrusted content (or trusted
    # data, when declared so) for the arguments of later calls.
    record_tool_result(guard, spec.name, result, spec=spec, named=named)


def _on_error(guard: Guard, spec: ToolSpec, exc: BaseException) -> None:
    # What a tool raised reaches the model as text (an API error's body),
    # chained exceptions included: untrusted content whatever the tool's
    # output is declared (an error can echo an argument the model chose).
    run = current_run()
    if run is None:
        return
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 8:
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    run.record_result(
        texts,
        source=f"tool.{spec.name}",
        untrusted=True,
        trusted_fields=frozenset(),
        raised=True,
    )


def _on_result(
    guard: Guard,
    spec: ToolSpec,
    result: Any,
    named: NamedCall | _FromContext | None = _FROM_CONTEXT,
) -> None:
    _check_result(guard, spec, result)
    _record_result(guard, spec, result, named)


def _results_of_this_call(guard: Guard, spec: ToolSpec) -> Callable[[Any], None]:
    # Taken as the call starts, right after its check: a result that comes
    # later (an iterator, an awaitable a plain function returns) is still
    # this call's, whatever other call of the tool was made meanwhile.
    named = take_named_call(f"tool.{spec.name}")
    return functools.partial(_on_result, guard, spec, named=named)


def capped_tool(guard: Guard, spec: ToolSpec, fn: Any) -> Any:
    """``fn`` whose result may not carry a label above the tool's data level.

    Every shape of result is checked (see ``_internal.tool_results``):
    values at any depth, what a coroutine returns, each item a generator or
    async generator yields, and a lazy result a plain function returns. In
    an agent run, each checked result is also recorded for argument
    provenance (I12): as untrusted content, or as trusted data when the
    tool's output is declared trusted (``untrusted_output: false``) or for
    the fields the policy lists under ``trusted_fields``.
    """
    return capped(
        fn,
        functools.partial(_on_result, guard, spec),
        functools.partial(_on_error, guard, spec),
        per_call=functools.partial(_results_of_this_call, guard, spec),
    )
