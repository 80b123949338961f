"""The one registration path of a tool: declaration check, forbidden code (I3).

:func:`register_tool` is what ``guard.tool``, :func:`guarded_tool` and the
MCP integrations call; the call-time decision itself is
:func:`aiinvariants.tools.check_tool`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from typing_extensions import ParamSpec

from aiinvariants._errors import PolicyError
from aiinvariants._internal.code_layers import remember_caps as _remember_caps
from aiinvariants._internal.code_layers import sticky_caps as _sticky_caps
from aiinvariants._internal.provenance import arguments_by_name, signature_of
from aiinvariants._internal.wrapping import wrap_checked
from aiinvariants._options import ToolDeclaration
from aiinvariants._scopes import ScopeRule
from aiinvariants._tools.spec import ToolSpec
from aiinvariants.taint import current_run

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = ["GuardedTool", "check_registration", "guarded_tool", "register_tool"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


def check_registration(
    guard: Guard, name: str, spec: ToolSpec | None, extra: frozenset[str] = frozenset()
) -> None:
    """Refuse, with :class:`PolicyError`, a tool the policy forbids now (I3)."""
    from aiinvariants import tools  # the decision core imports this module

    policy = guard.policy
    tool = tools._effective(policy, name, spec, extra)
    caps = tool.capabilities if tool is not None else extra
    forbidden = tools._forbidden(caps, policy)
    if forbidden:
        guard.audit.record(
            invariant="I3",
            decision="deny",
            reason="capability_forbidden",
            resource=f"tool.{name}",
            details={"capabilities": " ".join(sorted(forbidden)), "at": "register"},
        )
        raise PolicyError(
            f"tool {name!r} cannot be registered: capability "
            + ", ".join(sorted(forbidden))
            + " is forbidden by the policy (capabilities.forbidden)"
        )


def register_tool(
    guard: Guard,
    fn: Any,
    *,
    name: str | None = None,
    scopes: Iterable[str] = (),
    any_scopes: Iterable[str] = (),
    capabilities: Iterable[str] = (),
    data: str | None = None,
    exposure: str | None = None,
    untrusted_output: bool | None = None,
    free_text: Iterable[str] | None = None,
) -> ToolSpec:
    """Validate a tool's declaration and refuse forbidden code (I3).

    The one registration path of ``guard.tool`` and the MCP integration.
    The capabilities declared here and in the policy stick to every layer of
    the code ``fn`` runs (see ``_internal.code_layers``), so the same code
    registered again under another name, through ``functools.partial``, a
    new bound method, a new instance of its class or any wrapper chain is
    refused too.

    Returns:
        the validated spec.

    Raises:
        PolicyError: ``fn`` is not callable, a malformed declaration, an
            unknown data label, or a capability the policy forbids.
    """
    if not callable(fn):
        raise PolicyError(f"cannot guard {type(fn).__name__}: it is not callable")
    tool_name = name or getattr(fn, "__name__", None) or "tool"
    spec = ToolDeclaration(
        scopes=scopes,
        any_scopes=any_scopes,
        capabilities=capabilities,
        data=data,
        exposure=exposure,
        untrusted_output=untrusted_output,
        free_text=free_text,
    ).spec(tool_name)
    if data is not None and data not in guard.policy.classifications:
        raise PolicyError(
            f"tool {tool_name!r}: data={data!r} is not one of the policy's "
            "classifications"
        )
    inherited = _sticky_caps(fn, references=True)
    outer = getattr(fn, "spec", None)
    if isinstance(outer, ToolSpec):
        inherited |= outer.capabilities
    declared = guard.policy.tools.get(tool_name)
    own = spec.capabilities | (
        frozenset(declared.capabilities) if declared else frozenset()
    )
    # Remember before refusing: a refused callable stays refused under
    # every other name it might be registered as later.
    _remember_caps(fn, own | inherited)
    check_registration(guard, tool_name, spec, inherited)
    return spec


class GuardedTool(Protocol[P, R_co]):
    """A function wrapped by :func:`guarded_tool`; called like the original.

    ``spec``, ``rule``, ``resource`` and ``guard`` let a test inspect it.
    """

    @property
    def spec(self) -> ToolSpec: ...
    @property
    def rule(self) -> ScopeRule | None: ...
    @property
    def resource(self) -> str: ...
    @property
    def __wrapped__(self) -> Callable[P, R_co]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


def guarded_tool(
    guard: Guard | None = None,
    /,
    *,
    name: str | None = None,
    scopes: Iterable[str] = (),
    any_scopes: Iterable[str] = (),
    capabilities: Iterable[str] = (),
    data: str | None = None,
    exposure: str | None = None,
    untrusted_output: bool | None = None,
    free_text: Iterable[str] | None = None,
) -> Callable[[Callable[P, R]], GuardedTool[P, R]]:
    """Decorate a function as a guarded tool (``guard.tool(...)``).

    Stops a model from reaching a tool with the application's authority
    (scopes come from the verified principal, not the arguments), an
    anonymous user from reaching non-public data (I2), AI from reaching a
    forbidden capability under any name (I3), and a tainted agent run from
    exfiltrating data without confirmation (I12).

    Args:
        guard: the guard whose policy decides; defaults to the installed
            guard (see ``Guard.install``), looked up at decoration time.
        name: the tool's name; defaults to the function's ``__name__``.
        scopes: scopes that are all needed.
        any_scopes: scopes of which one is needed as well.
        capabilities: what the tool can do (``sends_external``...).
        data: the highest classification the tool returns; undeclared means
            the highest label (fail closed).
        exposure: ``"public"`` lets anonymous users call it (only with
            public data); ``"internal"`` needs authentication.
        untrusted_output: the output may carry injected instructions (taints
            an agent run, I12); None: as the policy says, else True.
        free_text: the parameters whose values are the model's prose (I12
            provenance checks only the identifiers they carry; declared,
            every other parameter is checked whole); None: undeclared.

    Raises:
        PolicyError: at decoration, for a malformed declaration or a
            capability the policy forbids.
    """
    if guard is None:
        from aiinvariants._guard import default_guard

        guard = default_guard()
    bound = guard
    from aiinvariants.tools import call_checked_tool, capped_tool

    def decorate(fn: Callable[P, R]) -> GuardedTool[P, R]:
        spec = register_tool(
            bound,
            fn,
            name=name,
            scopes=scopes,
            any_scopes=any_scopes,
            capabilities=capabilities,
            data=data,
            exposure=exposure,
            untrusted_output=untrusted_output,
            free_text=free_text,
        )
        tool_name = spec.name
        signature = signature_of(fn)

        def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            # Only I12 provenance reads the arguments, and only in a run:
            # binding them by name is most of a call's cost, so skip it outside.
            arguments = (
                arguments_by_name(signature, args, kwargs)
                if current_run() is not None
                else None
            )
            call_checked_tool(bound, spec, fn, arguments=arguments)

        wrapper = wrap_checked(
            capped_tool(bound, spec, fn),
            check,
            with_arguments=True,
            spec=spec,
            rule=spec.rule,
            resource=f"tool.{tool_name}",
            guard=bound,
        )
        wrapper.__wrapped__ = fn
        return cast("GuardedTool[P, R]", wrapper)

    return decorate
