"""The Guard: the one object an application holds.

A guard is built from a :class:`~aiinvariants.policy.Policy`. It owns the
audit log the policy describes and hands out the enforcement points: scope
checks and decorators now; retrievers, tools and LLM clients as those
capabilities land. Every decision it makes is recorded in its audit log and
carries the policy's hash.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, Self, TypeVar, overload

from typing_extensions import ParamSpec

from aiinvariants._errors import (
    AuthenticationRequired,
    InsecureUsageWarning,
    InvariantViolation,
    PolicyError,
    ScopeDenied,
)
from aiinvariants._internal.closing import Closing
from aiinvariants._principal import Principal, current_principal
from aiinvariants._scopes import (
    Enforced,
    ScopeRule,
    authenticated,
    enforce_user_scope,
)
from aiinvariants.policy import Policy

if TYPE_CHECKING:
    # Typing only: the overloads name framework types, never imported at
    # run time (the core imports no framework).
    import anthropic
    import openai
    from agents import FunctionTool
    from langchain_aws import BedrockEmbeddings, ChatBedrockConverse
    from langchain_aws.llms.bedrock import BedrockBase
    from langchain_core.language_models import BaseChatModel
    from langchain_core.retrievers import BaseRetriever as LCRetriever
    from langchain_core.tools import BaseTool
    from langchain_core.vectorstores import VectorStore as LCVectorStore
    from llama_index.core import VectorStoreIndex
    from llama_index.core.retrievers import BaseRetriever as LlamaRetriever
    from mcp import ClientSession
    from mcp.client.client import Client as MCPClient
    from qdrant_client import QdrantClient
    from typing_extensions import Unpack

    from aiinvariants._classification import Authorizer
    from aiinvariants._options import RetrievalKeywords, ToolDeclaration
    from aiinvariants.audit import AuditLog, AuditSink
    from aiinvariants.filters import OutputPipeline
    from aiinvariants.filters.classifiers import Classifier
    from aiinvariants.integrations._mcp_client import GuardedClientSession
    from aiinvariants.integrations.anthropic import (
        AsyncGuardedAnthropicClient,
        GuardedAnthropicClient,
    )
    from aiinvariants.integrations.bedrock import BotocoreClient, GuardedBedrock
    from aiinvariants.integrations.langchain import SecureRetriever
    from aiinvariants.integrations.langchain_tools import GuardedLangChainTool
    from aiinvariants.integrations.llamaindex import SecureLlamaRetriever
    from aiinvariants.integrations.openai import (
        AsyncGuardedOpenAIClient,
        GuardedOpenAIClient,
    )
    from aiinvariants.integrations.qdrant import SecureQdrantRetriever
    from aiinvariants.llm._guarded import GuardedCallable
    from aiinvariants.policy import UseCase
    from aiinvariants.tools import GuardedTool

    #: Clients whose guarded form is a copy of the same class.
    _SameClient = TypeVar(
        "_SameClient",
        bound=anthropic.AnthropicBedrock
        | anthropic.AsyncAnthropicBedrock
        | anthropic.AnthropicVertex
        | anthropic.AsyncAnthropicVertex
        | BaseChatModel
        | BedrockBase
        | ChatBedrockConverse
        | BedrockEmbeddings,
    )


__all__ = ["Guard", "ToolDecorator", "default_guard"]

P = ParamSpec("P")
R = TypeVar("R")


class ToolDecorator:
    """What ``guard.tool(...)`` returns: applied to the tool to guard.

    The integration is chosen from the object's type
    (:mod:`aiinvariants.integrations._dispatch`); each overload below is
    the type that comes back.
    """

    __slots__ = ("_declaration", "_guard")

    def __init__(self, guard: Guard, declaration: ToolDeclaration) -> None:
        self._guard = guard
        self._declaration = declaration

    @overload
    def __call__(self, tool: BaseTool, /) -> GuardedLangChainTool: ...

    @overload
    def __call__(self, tool: FunctionTool, /) -> FunctionTool: ...

    @overload
    def __call__(self, tool: ClientSession | MCPClient, /) -> GuardedClientSession: ...

    @overload
    def __call__(self, tool: Callable[P, R], /) -> GuardedTool[P, R]: ...

    def __call__(self, tool: object, /) -> object:
        """Guard ``tool``.

        Raises:
            PolicyError: a forbidden capability or a bad declaration, or
                ``unsupported_object`` for an object no integration takes.
        """
        from aiinvariants.integrations._dispatch import guard_tool

        return guard_tool(self._guard, tool, self._declaration)

    def __repr__(self) -> str:
        return f"ToolDecorator({self._declaration!r})"


class Guard(Closing):
    """Enforces one policy and records every decision it makes.

    Args:
        policy: the invariants to enforce; ``Guard()`` uses the strict
            defaults of ``Policy()``.
        sinks: audit sinks added to those the policy declares (e.g. a sink
            the app builds itself).
        replace_policy_sinks: use ``sinks`` *instead of* the policy's sinks
            (tests that swap the policy's file for a ``MemorySink``). Dropping
            a ``jsonl`` sink the policy declares drops the tamper-evident
            record, so that case warns (``InsecureUsageWarning``) and is
            audited.

    Raises:
        PolicyError: when ``policy`` is not a Policy, or its audit sinks
            cannot be set up (an unwritable path, a missing signing key…).
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        sinks: Iterable[AuditSink] = (),
        replace_policy_sinks: bool = False,
    ) -> None:
        from aiinvariants.audit import AuditLog
        from aiinvariants.audit._log import close_sinks, policy_sinks

        if policy is None:
            policy = Policy()
        elif not isinstance(policy, Policy):
            raise PolicyError(
                f"Guard() needs a Policy, got {type(policy).__name__}; "
                "use load_policy(path) to read a policy file"
            )
        if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
            raise PolicyError("Guard(sinks=...) must be an iterable of audit sinks")
        self._policy = policy
        self._extra_sinks: tuple[AuditSink, ...] = tuple(sinks)
        self._replace_sinks = bool(replace_policy_sinks)
        self._reload_lock = threading.Lock()
        owned = [] if self._replace_sinks else policy_sinks(policy)
        try:
            self._audit: AuditLog = AuditLog(
                [*owned, *self._extra_sinks],
                policy_hash=policy.hash,
                on_write_failure=policy.audit.on_write_failure,
            )
        except BaseException:
            close_sinks(owned)
            raise
        self._owned_sinks: tuple[AuditSink, ...] = tuple(owned)
        if self._replace_sinks:
            self._report_replaced_sinks()
        self._report_insecure_settings()

    def _report_replaced_sinks(self) -> None:
        dropped = [s.kind for s in self._policy.audit.sinks]
        if "jsonl" not in dropped:
            return
        warnings.warn(
            "Guard(replace_policy_sinks=True) drops the policy's jsonl audit "
            "sink: decisions will not reach the tamper-evident trail",
            InsecureUsageWarning,
            stacklevel=3,
        )
        self._audit.record(
            invariant="I13",
            decision="flag",
            reason="policy_sinks_replaced",
            details={"dropped": " ".join(dropped)},
        )

    def _report_insecure_settings(self) -> None:
        # Safe by default, dangerous by name: a policy may weaken a check, but
        # never silently. One warning for the developer, one audit event per
        # setting for whoever reviews the trail.
        weakened = self._policy.insecure_settings()
        if not weakened:
            return
        warnings.warn(
            f"policy {self._policy.app!r} weakens enforcement: " + ", ".join(weakened),
            InsecureUsageWarning,
            stacklevel=3,
        )
        for setting in weakened:
            self._audit.record(
                invariant=_SETTING_INVARIANT.get(setting.split(".")[0], "I13"),
                decision="flag",
                reason="insecure_setting",
                resource=f"policy.{setting}",
            )

    @property
    def policy(self) -> Policy:
        """The policy this guard enforces."""
        return self._policy

    @property
    def audit(self) -> AuditLog:
        """The audit log every decision of this guard is written to."""
        return self._audit

    # -- decisions ---------------------------------------------------------

    def check_scopes(
        self,
        rule: ScopeRule | None,
        *,
        resource: str,
        principal: Principal | None = None,
    ) -> Principal:
        """Check that the principal may make a call needing ``rule``.

        The imperative form of :meth:`enforce_user_scope`, for places where a
        decorator does not fit. ``rule=None`` requires only authentication.

        Returns:
            the principal the check was made for.

        Raises:
            AuthenticationRequired: the principal is not authenticated.
            ScopeDenied: a needed scope was not delegated.
            AuditUnavailable: an allowed call could not be recorded.
        """
        who = current_principal() if principal is None else principal
        if not who.authenticated:
            self._deny(
                AuthenticationRequired(
                    "the call needs an authenticated user",
                    subject=who.subject,
                    resource=resource,
                ),
                who,
                details=None,
            )
        if rule is None or rule.allows(who.scopes):
            if self._audit.active:
                self._audit.record(
                    invariant="I1",
                    decision="allow",
                    reason="authenticated" if rule is None else "scopes_held",
                    resource=resource,
                    principal=who,
                )
            return who
        required = rule.closest(who.scopes)
        missing = required - who.scopes
        denial = ScopeDenied(
            "the user did not delegate a scope this call needs",
            required=sorted(required),
            missing=sorted(missing),
            alternatives=(alt - who.scopes for alt in rule.alternatives),
            subject=who.subject,
            resource=resource,
        )
        self._deny(
            denial,
            who,
            details={
                "required": " ".join(sorted(required)),
                "missing": " ".join(sorted(missing)),
            },
        )

    def _deny(
        self,
        denial: InvariantViolation,
        who: Principal,
        *,
        details: Mapping[str, str | int | float | bool | None] | None,
    ) -> NoReturn:
        self._audit.deny(denial, principal=who, details=details)

    def check_use_case(
        self,
        name: str,
        *,
        resource: str | None = None,
        principal: Principal | None = None,
    ) -> UseCase:
        """Check that use case ``name`` may run today (I11).

        The imperative form of :meth:`use_case`.

        Returns:
            the use case's declaration.

        Raises:
            AuthenticationRequired: an anonymous caller of an internal app.
            AccessDenied: the caller's clearance is not a policy label.
            UseCaseNotApproved: the use case is not declared, or it is
                high-risk and its approval is missing or expired.
            AuditUnavailable: an allowed run could not be recorded.
        """
        from aiinvariants._usecases import check_use_case

        return check_use_case(self, name, resource=resource, principal=principal)

    def use_case(
        self, name: str, *, resource: str | None = None
    ) -> Callable[[Callable[P, R]], Enforced[P, R]]:
        """:func:`aiinvariants.use_case` bound to this guard."""
        from aiinvariants._usecases import use_case

        return use_case(name, resource=resource, guard=self)

    def enforce_user_scope(
        self,
        *scopes: str | ScopeRule,
        any_scopes: Iterable[str] | None = None,
        resource: str | None = None,
        any_of: Iterable[str] | None = None,
    ) -> Callable[[Callable[P, R]], Enforced[P, R]]:
        """:func:`aiinvariants.enforce_user_scope` bound to this guard."""
        from aiinvariants._internal.deprecation import renamed_keyword

        any_scopes = renamed_keyword(
            "Guard.enforce_user_scope()", "any_of", any_of, "any_scopes", any_scopes
        )
        return enforce_user_scope(
            *scopes, any_scopes=any_scopes, resource=resource, guard=self
        )

    @overload
    def requires_authentication(self, fn: Callable[P, R], /) -> Enforced[P, R]: ...

    @overload
    def requires_authentication(
        self, /, *, resource: str | None = None
    ) -> Callable[[Callable[P, R]], Enforced[P, R]]: ...

    def requires_authentication(
        self, fn: Callable[P, R] | None = None, /, *, resource: str | None = None
    ) -> Enforced[P, R] | Callable[[Callable[P, R]], Enforced[P, R]]:
        """:func:`aiinvariants.requires_authentication` bound to this guard."""
        if fn is not None:
            return authenticated(fn, resource=resource, guard=self)

        def decorate(inner: Callable[P, R]) -> Enforced[P, R]:
            return authenticated(inner, resource=resource, guard=self)

        return decorate

    def tool(
        self,
        *,
        name: str | None = None,
        scopes: Iterable[str] = (),
        any_scopes: Iterable[str] = (),
        capabilities: Iterable[str] = (),
        data: str | None = None,
        exposure: str | None = None,
        untrusted_output: bool | None = None,
        free_text: Iterable[str] | None = None,
    ) -> ToolDecorator:
        """Guard a tool (I1/I2/I3/I12); see ``tools.guarded_tool``.

        The tool's declaration in the policy (``tools.<name>``) and the one
        given here are combined, so code cannot weaken the policy. A tool with
        a forbidden capability is refused here (``PolicyError``) and at every
        call (``ToolForbidden``). The decorator takes any callable, a LangChain
        ``BaseTool`` (a guarded ``BaseTool`` comes back), an OpenAI Agents
        SDK ``FunctionTool`` (guarded in place) or an MCP ``ClientSession``/
        ``Client`` (its tool calls are checked; declare its tools in the
        policy); anything else is refused (``unsupported_object``).
        """
        from aiinvariants._options import ToolDeclaration

        declaration = ToolDeclaration(
            name=name,
            scopes=scopes,
            any_scopes=any_scopes,
            capabilities=capabilities,
            data=data,
            exposure=exposure,
            untrusted_output=untrusted_output,
            free_text=free_text,
        )
        return ToolDecorator(self, declaration)

    def check_tool(
        self,
        name: str,
        *,
        principal: Principal | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> Principal:
        """Check that the principal may call tool ``name`` now (imperative form).

        ``arguments`` (by name) let the run's provenance rules (I12) see
        what the call would do.
        """
        from aiinvariants.tools import check_tool

        return check_tool(self, name, principal=principal, arguments=arguments)

    def check_resource(
        self, uri: str, *, principal: Principal | None = None, record: bool = True
    ) -> Principal:
        """Check that the principal may read resource ``uri`` now (MCP)."""
        from aiinvariants.resources import check_resource

        return check_resource(self, uri, principal=principal, record=record)

    def check_prompt(
        self,
        name: str,
        *,
        principal: Principal | None = None,
        record: bool = True,
        arguments: Mapping[str, Any] | None = None,
    ) -> Principal:
        """Check that the principal may get prompt ``name`` now (MCP)."""
        from aiinvariants.resources import check_prompt

        return check_prompt(
            self, name, principal=principal, record=record, arguments=arguments
        )

    @overload
    def llm(
        self,
        client: openai.OpenAI,
        *,
        system_prompt: str | None = None,
        classifiers: Iterable[Classifier] = (),
    ) -> GuardedOpenAIClient: ...

    @overload
    def llm(
        self,
        client: openai.AsyncOpenAI,
        *,
        system_prompt: str | None = None,
        classifiers: Iterable[Classifier] = (),
    ) -> AsyncGuardedOpenAIClient: ...

    @overload
    def llm(
        self,
        client: anthropic.Anthropic,
        *,
        system_prompt: str | None = None,
        classifiers: Iterable[Classifier] = (),
    ) -> GuardedAnthropicClient: ...

    @overload
    def llm(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        system_prompt: str | None = None,
        classifiers: Iterable[Classifier] = (),
    ) -> AsyncGuardedAnthropicClient: ...

    @overload
    def llm(
        self,
        client: _SameClient,
        *,
        system_prompt: str | None = None,
        classifiers: Iterable[Classifier] = (),
    ) -> _SameClient: ...

    @overload
    def llm(
        self,
        client: Callable[..., object],
        *,
        system_prompt: str | None = None,
        classifiers: Iterable[Classifier] = (),
        model: str | None = None,
        endpoint: str | None = None,
    ) -> GuardedCallable: ...

    @overload
    def llm(
        self,
        client: BotocoreClient,
        *,
        system_prompt: str | None = None,
        classifiers: Iterable[Classifier] = (),
    ) -> GuardedBedrock: ...

    def llm(
        self,
        client: object,
        *,
        system_prompt: str | None = None,
        classifiers: Iterable[Classifier] = (),
        model: str | None = None,
        endpoint: str | None = None,
    ) -> object:
        """Guard an LLM client (I5-I8, I10); see ``aiinvariants.llm.guard_llm``.

        Model, region and data-use opt-out are checked on every request as
        it is sent (openai/anthropic: in the client's HTTP layer); every
        string of the answers and streams passes the output pipeline.
        LangChain ``ChatOpenAI``/``ChatAnthropic``, langchain-aws models and
        boto3 ``bedrock-runtime`` clients are accepted too, and any callable
        (with ``model=`` and ``endpoint=``). The integration is chosen from
        the client's type (:mod:`aiinvariants.integrations._dispatch`).

        Raises:
            PolicyError: ``unsupported_object`` for a client of no supported
                kind; ``model=``/``endpoint=`` given for an SDK client.
        """
        from aiinvariants.integrations._dispatch import guard_llm

        return guard_llm(
            self,
            client,
            system_prompt=system_prompt,
            classifiers=classifiers,
            model=model,
            endpoint=endpoint,
        )

    @overload
    def retriever(
        self,
        inner: LCRetriever | LCVectorStore,
        /,
        **options: Unpack[RetrievalKeywords],
    ) -> SecureRetriever: ...

    @overload
    def retriever(
        self,
        inner: LlamaRetriever | VectorStoreIndex,
        /,
        **options: Unpack[RetrievalKeywords],
    ) -> SecureLlamaRetriever: ...

    @overload
    def retriever(
        self,
        inner: QdrantClient,
        /,
        *,
        collection: str,
        embed: Callable[[str], Sequence[float]],
        **options: Unpack[RetrievalKeywords],
    ) -> SecureQdrantRetriever: ...

    def retriever(
        self,
        inner: object,
        /,
        *,
        k: int | None = None,
        data: str | None = None,
        requires_authentication: bool = False,
        authorizer: Authorizer | None = None,
        labels: Sequence[str] | None = None,
        source: str | None = None,
        max_rounds: int = 4,
        fetch_multiplier: int = 4,
        max_fetch: int = 2_000,
        cache_size: int = 0,
        principal_from_config: bool = False,
        collection: str | None = None,
        embed: Callable[[str], Sequence[float]] | None = None,
    ) -> object:
        """Wrap a LangChain, LlamaIndex or Qdrant retriever or store (I1/I2).

        Every returned document is re-checked against the current principal
        (classification, tenant, ACLs); where the store can express it, the
        filter is also pushed down into the query. ``principal_from_config``
        (LangChain only): act for the ``Principal`` in
        ``config["configurable"]["principal"]``. ``collection`` and
        ``embed`` (Qdrant only): the collection searched and the query's
        embedding. The integration is chosen from ``inner``'s type.

        Raises:
            PolicyError: a public app and a source above ``public`` that does
                not require authentication, an option the framework does not
                take, or ``unsupported_object`` for a retriever shape that
                cannot be guarded.
        """
        from aiinvariants._options import RetrievalOptions
        from aiinvariants.integrations._dispatch import guard_retriever

        options = RetrievalOptions(
            k=k,
            data=data,
            requires_authentication=requires_authentication,
            authorizer=authorizer,
            labels=labels,
            source=source,
            max_rounds=max_rounds,
            fetch_multiplier=fetch_multiplier,
            max_fetch=max_fetch,
            cache_size=cache_size,
            principal_from_config=principal_from_config,
            collection=collection,
            embed=embed,
        )
        return guard_retriever(self, inner, options)

    def output_pipeline(self) -> OutputPipeline:
        """The output filters the policy turns on, auditing to this guard (I8/I9).

        Raises:
            PolicyError: a registered-secret variable the policy names is
                missing or empty.
        """
        from aiinvariants.filters import OutputPipeline

        return OutputPipeline.from_policy(self._policy, audit=self._audit)

    # -- lifecycle ---------------------------------------------------------

    def install(self) -> Self:
        """Make this the guard that module-level decorators use.

        ``@enforce_user_scope`` and ``@requires_authentication`` without a
        ``guard=`` argument look the installed guard up at call time, so
        library code can be decorated before the application has built its
        guard. Until a guard is installed they use a ``Guard()`` with the
        strict default policy and no audit sinks.
        """
        global _installed
        with _install_lock:
            _installed = self
        return self

    def replace_policy(self, policy: Policy) -> None:
        """Enforce ``policy`` from now on (hot reload), and record the change.

        The policy and the audit sinks it declares are swapped in at once:
        a decision made concurrently uses the old or the new policy, never
        a mix of sinks. Sinks on the same ``jsonl`` path keep writing the
        same segment. The change is recorded as an ``I13``/``flag`` event
        (reason ``policy_replaced``, details ``from`` and ``to`` hashes);
        when the audit settings change, the old sinks first record
        ``policy_replacing`` (same details), so a reload that moves or
        drops the trail shows in it. When either cannot be recorded, the
        old policy stays and the error is raised. Concurrent calls are
        serialised.

        Checks that read the guard's policy at each call (scopes, tools,
        use cases, the model and region checks of a guarded LLM client)
        follow at once. Objects built earlier from the policy keep the one
        they were built with (an ``output_pipeline()``, the classifiers and
        system prompt of a guarded client, a retriever's settings): build
        them again after a reload.

        Raises:
            PolicyError: ``policy`` is not a Policy, or its sinks cannot be
                set up (the old policy stays in force).
            AuditUnavailable: the change could not be recorded.
        """
        from aiinvariants._errors import AuditUnavailable
        from aiinvariants.audit._log import close_sinks, policy_sinks

        if not isinstance(policy, Policy):
            raise PolicyError(
                f"replace_policy() needs a Policy, got {type(policy).__name__}"
            )
        with self._reload_lock:
            old = self._policy
            rebuild = not self._replace_sinks and policy.audit != old.audit
            if rebuild:
                # The sinks about to be dropped (the tamper-evident trail
                # among them) record the hand-over first, so that a reload
                # that moves or switches off the trail is not invisible in
                # it. Failing to record it leaves everything as it was.
                self._audit.record(
                    invariant="I13",
                    decision="flag",
                    reason="policy_replacing",
                    resource=f"policy.{policy.app}",
                    details={"from": old.hash, "to": policy.hash},
                )
            owned = tuple(policy_sinks(policy)) if rebuild else self._owned_sinks
            self._audit._reconfigure(
                [*owned, *self._extra_sinks],
                policy_hash=policy.hash,
                on_write_failure=policy.audit.on_write_failure,
            )
            self._policy = policy
            try:
                self._audit.record(
                    invariant="I13",
                    decision="flag",
                    reason="policy_replaced",
                    resource=f"policy.{policy.app}",
                    details={"from": old.hash, "to": policy.hash},
                )
            except AuditUnavailable:
                self._policy = old
                self._audit._reconfigure(
                    [*self._owned_sinks, *self._extra_sinks],
                    policy_hash=old.hash,
                    on_write_failure=old.audit.on_write_failure,
                )
                if rebuild:
                    close_sinks(owned)
                raise
            if rebuild:
                close_sinks(self._owned_sinks)
                self._owned_sinks = owned
        if self._replace_sinks and policy.audit != old.audit:
            self._report_replaced_sinks()
        self._report_insecure_settings()

    def close(self) -> None:
        """Flush and close the audit sinks."""
        self._audit.close()

    def __repr__(self) -> str:
        return (
            f"Guard(app={self._policy.app!r}, policy={self._policy.hash[:19]}…, "
            f"sinks={len(self._audit.sinks)})"
        )


#: Which invariant a weakened policy section puts at risk.
_SETTING_INVARIANT: Final = {
    "identity": "I1",
    "clearance": "I1",
    "tools": "I12",
    "capabilities": "I3",
    "data_use": "I7",
    "outputs": "I8",
    "audit": "I13",
}

_install_lock = threading.Lock()
_installed: Guard | None = None


def default_guard() -> Guard:
    """The installed guard, or a strict ``Guard()`` made on first use."""
    global _installed
    guard = _installed
    if guard is not None:
        return guard
    with _install_lock:
        if _installed is None:
            _installed = Guard()
        return _installed
