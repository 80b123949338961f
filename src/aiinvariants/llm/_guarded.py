"""The checks every guarded LLM call runs, and the entry point ``guard_llm``.

:class:`CallGuard` is what the provider integrations share. Before a call it
decides the model (I5), the region (I6) and the data-use opt-out (I7),
auditing each decision; after it, answers and tool-call arguments pass the
guard's output pipeline (I8/I9/I10), and streams pass a
:class:`~aiinvariants.filters.StreamGuard` so nothing unsafe is yielded.
The system prompt is registered with the leak filter and gets its canary.

:func:`guard_llm` is ``guard.llm``: the integration is picked from the
client's type by :mod:`aiinvariants.integrations._dispatch` (the official
``openai`` and ``anthropic`` clients, a boto3 ``bedrock-runtime`` client,
LangChain chat models, or any callable, :class:`GuardedCallable`). Anything
else is a ``PolicyError`` (``unsupported_object``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn

from aiinvariants._errors import (
    AuditUnavailable,
    InvariantViolation,
    ModelDenied,
    PolicyError,
    RegionDenied,
)
from aiinvariants._internal.authority import enforce_caller
from aiinvariants._internal.urls import url_problem
from aiinvariants.filters import OutputPipeline, StreamGuard, SystemPromptLeakFilter
from aiinvariants.filters.classifiers import (
    Classifier,
    ClassifierFilter,
    classifiers_from_policy,
)
from aiinvariants.llm._models import BEDROCK_PROFILE_PREFIXES, ModelId, decide_model
from aiinvariants.llm._optout import apply_opt_out
from aiinvariants.llm._regions import Placement, decide_region, region_from_url

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = ["CallGuard", "GuardedCallable", "guard_llm"]

_MAX_SYSTEM_PROMPTS: Final = 256
_MAX_GOOD_URLS: Final = 64


class CallGuard:
    """The per-client checks of a guarded LLM client.

    Args:
        guard: the guard whose policy and audit log are used.
        provider: ``openai``, ``anthropic``, ``bedrock`` or ``generic``.
        placement: where the client's endpoint runs (see
            :mod:`aiinvariants.llm._regions`).
        system_prompt: the app's system prompt; registered with the leak
            filter, and :attr:`system_prompt` returns it with the canary.
        deployments: Azure deployment -> model; when given, a call's
            ``model`` is a deployment name and an unmapped one is denied.
        classifiers: content classifiers (I10) run on every answer, on top
            of those the policy's ``outputs.classifiers`` declares.
        resource: the name used in audit events (e.g. ``openai.chat``).
    """

    def __init__(
        self,
        guard: Guard,
        *,
        provider: str,
        placement: Placement,
        system_prompt: str | None = None,
        deployments: Mapping[str, str] | None = None,
        classifiers: Iterable[Classifier] = (),
        resource: str,
    ) -> None:
        self.guard = guard
        self.provider = provider
        self.placement = placement
        self.deployments = deployments
        self.resource = resource
        pipeline = guard.output_pipeline()
        extra = [
            ClassifierFilter(c)
            for c in [*classifiers_from_policy(guard.policy), *classifiers]
        ]
        if extra:
            pipeline = OutputPipeline([*pipeline.filters, *extra], audit=pipeline.audit)
        self.pipeline: OutputPipeline = pipeline
        self._leak: SystemPromptLeakFilter | None
        try:
            self._leak = self.pipeline.get(SystemPromptLeakFilter)
        except LookupError:
            self._leak = None
        self._raw_prompt = system_prompt
        self._seen: set[str] = set()
        self._good_urls: set[str] = set()
        self.system_prompt: str | None = None
        if system_prompt is not None:
            if not isinstance(system_prompt, str):
                raise PolicyError("system_prompt must be a str")
            self.system_prompt = (
                self._leak.protect(system_prompt) if self._leak else system_prompt
            )
            self._seen.add(_digest(system_prompt))

    # -- before the call -----------------------------------------------------

    def check_destination(self, url: object, *, proxied: bool = False) -> None:
        """Deny a request whose URL the one URL rule refuses, before it is sent.

        Every request a guarded client lets out carries its credential (API
        key, signature) to this URL: https, or plain http to loopback only,
        no credentials or fragment in it, one reading for every parser
        (:mod:`aiinvariants._internal.urls`). The URL never appears in the
        error or the audit event: it may hold credentials. ``proxied``: the
        request goes through a proxy, another host, so plain http is refused
        even to loopback (the proxy would read the credential in clear).

        Raises:
            RegionDenied: I6 ``insecure_url``.
        """
        if proxied and isinstance(url, str) and url[:5].lower() == "http:":
            self._deny(
                RegionDenied(
                    "the LLM endpoint is plain http and the request would go "
                    "through a proxy, which reads it in clear; use https, or "
                    "exclude the host from the proxy (NO_PROXY); the request "
                    "was not sent",
                    code="insecure_url",
                )
            )
        if isinstance(url, str) and url in self._good_urls:
            return
        problem = url_problem(url)
        if problem is not None:
            self._deny(
                RegionDenied(
                    f"the LLM endpoint {problem}; the request was not sent",
                    code="insecure_url",
                )
            )
        if len(self._good_urls) < _MAX_GOOD_URLS:
            self._good_urls.add(str(url))

    def register_system(self, text: str) -> str:
        """Protect a system prompt seen in a call; plant the canary in the app's.

        The app's own prompt (given at construction) is replaced by its
        canaried form; any other system text is registered with the leak
        filter once (bounded), so the answer cannot echo it either.
        """
        if self._leak is None or not isinstance(text, str) or not text:
            return text
        if text == self._raw_prompt and self.system_prompt is not None:
            return self.system_prompt
        key = _digest(text)
        if key not in self._seen and len(self._seen) < _MAX_SYSTEM_PROMPTS:
            self._seen.add(key)
            self._leak.add_hidden(text)
        return text

    def before(
        self,
        model: Any,
        params: Mapping[str, Any],
        *,
        placement: Placement | None = None,
        switches: str | None = "default",
    ) -> dict[str, Any]:
        """Decide model, region and opt-out; return the parameters to send.

        This is the one per-call check every guarded path runs (the wire
        check of the httpx-based SDKs calls it with what the request really
        carries). ``placement`` is where this request goes (default: the
        client's); ``switches`` names the provider whose data-use switches
        apply (default: this client's provider; None: the endpoint has none).

        Raises:
            AuthenticationRequired: an anonymous caller of an internal app.
            AccessDenied: the caller's clearance is not a policy label.
            ModelDenied: I5 (``model_denied``, ``model_not_allowed``,
                ``model_unknown``, ``deployment_unmapped``) or I7
                (``data_use_opt_in``).
            RegionDenied: I6 (``region_unknown``, ``region_denied``,
                ``cross_region_profile``).
        """
        # Exposure and authority of the caller, resolved at call time for
        # the current principal like at every enforcement point (I1, I2).
        enforce_caller(self.guard, resource=self.resource)
        policy = self.guard.policy
        try:
            if not isinstance(model, str):
                raise ModelDenied("the call names no model", code="model_unknown")
            target = model
            if self.deployments is not None:
                mapped = self.deployments.get(model)
                if mapped is None:
                    raise ModelDenied(
                        f"Azure deployment {model!r} is not mapped to a model "
                        "in models.azure_deployments",
                        code="deployment_unmapped",
                        resource=model,
                    )
                target = mapped
            mid = decide_model(
                target, allow=policy.models.allow, deny=policy.models.deny
            )
            placement = self._placement_for(mid, placement or self.placement)
            decide_region(placement, allow=policy.regions.allow)
            if switches == "default":
                switches = self.provider if self.provider != "generic" else "bedrock"
            out = (
                apply_opt_out(switches, params, require=policy.data_use.require_opt_out)
                if switches is not None
                else dict(params)
            )
        except InvariantViolation as denial:
            self._deny(denial)
        if self.guard.audit.active:
            details = {"provider": self.provider, "model": mid.name}
            self.guard.audit.record(
                invariant="I5",
                decision="allow",
                reason="model_allowed",
                resource=self.resource,
                details=details,
            )
            self.guard.audit.record(
                invariant="I6",
                decision="allow",
                reason="region_allowed"
                if policy.regions.allow is not None
                else "no_region_restriction",
                resource=self.resource,
                details={"region": placement.home, "source": placement.source},
            )
            self.guard.audit.record(
                invariant="I7",
                decision="allow",
                reason="opt_out_set"
                if out != dict(params) or out.get("store") is False
                else "no_switch",
                resource=self.resource,
                details={"provider": self.provider},
            )
        return out

    def destination(self, placement: Placement) -> None:
        """Decide (I6) the region of a request that names no model.

        Raises:
            RegionDenied: ``region_unknown`` or ``region_denied``.
        """
        try:
            decide_region(placement, allow=self.guard.policy.regions.allow)
        except InvariantViolation as denial:
            self._deny(denial)

    def _placement_for(self, mid: ModelId, base: Placement) -> Placement:
        routes = list(base.routes)
        if mid.profile is not None:
            routes.extend(BEDROCK_PROFILE_PREFIXES[mid.profile])
        # The ARN's region is read from the canonical form, as its model is
        # (a zero-width or fullwidth "arn", an escaped ":" hide neither).
        raw = mid.forms[0]
        if raw.startswith("arn:"):
            fields = raw.split(":")
            if len(fields) > 3 and fields[3]:
                routes.append(fields[3])
        if routes == list(base.routes):
            return base
        return Placement(base.home, tuple(routes), base.source)

    def _deny(self, denial: InvariantViolation) -> NoReturn:
        if denial.resource is None:
            denial.resource = self.resource
        try:
            self.guard.audit.record(
                invariant=denial.invariant,
                decision="deny",
                reason=denial.code,
                resource=self.resource,
                details={"provider": self.provider, "target": denial.resource},
            )
        except AuditUnavailable as exc:
            raise denial from exc
        raise denial

    # -- after the call ------------------------------------------------------

    def text(self, text: str) -> str:
        """The safe form of an answer, or ``OutputBlocked``."""
        return self.pipeline.enforce(text)

    def json_args(self, value: Any) -> Any:
        """Tool-call arguments with every string passed through the pipeline."""
        if isinstance(value, str):
            return self.pipeline.enforce(value)
        if isinstance(value, Mapping):
            return {k: self.json_args(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json_args(v) for v in value]
        return value

    def stream(self) -> StreamGuard:
        """A fresh stream guard over this client's pipeline."""
        return StreamGuard(self.pipeline)


def _digest(text: str) -> str:
    return hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), digest_size=16
    ).hexdigest()


class GuardedCallable:
    """Guard any callable that returns a str, or yields str chunks.

    The model is fixed when wrapping (``model=``) unless the call passes a
    ``model`` keyword; the region comes from ``endpoint`` (declared in the
    policy or a regional host). Results that are ``str`` pass the output
    pipeline; iterators and async iterators of ``str`` pass a StreamGuard;
    an awaitable is awaited and then checked. Any other result is refused.
    """

    def __init__(
        self,
        guard: Guard,
        fn: Callable[..., Any],
        *,
        model: str | None,
        endpoint: str | None,
        system_prompt: str | None,
        classifiers: Iterable[Classifier] = (),
    ) -> None:
        if not callable(fn):
            raise PolicyError(f"cannot guard {type(fn).__name__}: it is not callable")
        self._fn = fn
        self._model = model
        # The model is read from what the call really runs: partials are
        # unrolled to the function and the arguments they fix, and a
        # ``model`` parameter's default counts when the call omits it.
        target, self._fixed, self._fixed_kw = _unpartial(fn)
        try:
            self._params: inspect.Signature | None = inspect.signature(target)
        except (TypeError, ValueError):
            self._params = None
        self.checks = CallGuard(
            guard,
            provider="generic",
            placement=Placement(None, source="none"),
            system_prompt=system_prompt,
            classifiers=classifiers,
            resource=_name(fn),
        )
        if endpoint is not None:
            # the callable sends there: the same rule as every guarded client
            self.checks.check_destination(endpoint)
            self.checks.placement = region_from_url(
                endpoint, guard.policy.regions.declared
            )

    @property
    def system_prompt(self) -> str | None:
        """The registered system prompt with its canary planted."""
        return self.checks.system_prompt

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        model = self._model_of(args, kwargs)
        self.checks.before(model, {})
        result = self._fn(*args, **kwargs)
        if inspect.isawaitable(result):
            return self._finish_async(result)
        return self._finish(result)

    def _model_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The model this call runs: passed, fixed by a partial, or defaulted."""
        args = (*self._fixed, *args)
        kwargs = {**self._fixed_kw, **kwargs}
        if self._params is not None:
            try:
                bound = self._params.bind_partial(*args, **kwargs)
            except TypeError:
                pass
            else:
                if "model" in bound.arguments:
                    return bound.arguments["model"]
                bound.apply_defaults()
                # A default of None: the function takes the declared model.
                if bound.arguments.get("model") is not None:
                    return bound.arguments["model"]
        return kwargs.get("model", self._model)

    async def _finish_async(self, result: Any) -> Any:
        return self._finish(await result)

    def _finish(self, result: Any) -> Any:
        if isinstance(result, str):
            return self.checks.text(result)
        if isinstance(result, AsyncIterator):
            return _guard_astr(self.checks.stream(), result)
        if isinstance(result, Iterator):
            return _guard_str(self.checks.stream(), result)
        raise PolicyError(
            f"a guarded callable must return str or an iterator of str, "
            f"got {type(result).__name__}"
        )


def _unpartial(
    fn: Callable[..., Any],
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """``fn`` without its ``functools.partial`` layers, and what they fix."""
    args: tuple[Any, ...] = ()
    keywords: dict[str, Any] = {}
    while isinstance(fn, functools.partial):
        args = (*fn.args, *args)
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    return fn, args, keywords


def _guard_str(sg: StreamGuard, chunks: Iterator[Any]) -> Iterator[str]:
    for chunk in chunks:
        if not isinstance(chunk, str):
            raise PolicyError("a guarded stream must yield str chunks")
        safe = sg.feed(chunk)
        if safe:
            yield safe
    rest = sg.close()
    if rest:
        yield rest


async def _guard_astr(
    sg: StreamGuard, chunks: AsyncIterator[Any]
) -> AsyncIterator[str]:
    async for chunk in chunks:
        if not isinstance(chunk, str):
            raise PolicyError("a guarded stream must yield str chunks")
        safe = sg.feed(chunk)
        if safe:
            yield safe
    rest = sg.close()
    if rest:
        yield rest


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def guard_llm(
    guard: Guard,
    client: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
    model: str | None = None,
    endpoint: str | None = None,
) -> Any:
    """Guard an LLM client: model, region, opt-out before; filters after.

    Args:
        guard: the guard whose policy applies and whose audit log records.
        client: an ``openai.OpenAI``/``AsyncOpenAI``/``AzureOpenAI``/
            ``AsyncAzureOpenAI``, an ``anthropic.Anthropic``/
            ``AsyncAnthropic``/``AnthropicBedrock``/``AnthropicVertex``, a
            LangChain ``ChatOpenAI``/``ChatAnthropic``, a boto3
            ``bedrock-runtime`` client, or any callable.
        system_prompt: the app's system prompt. It is registered with the
            leak filter; the guarded client's ``system_prompt`` attribute is
            the same text with the canary planted, to send to the model.
        model: for a plain callable only: the model it calls.
        endpoint: for a plain callable only: the URL it calls, from which
            (or from ``regions.declared``) its region is derived; it must
            pass the URL rule every guarded client's requests pass (https, or
            plain http to loopback only).

    Returns:
        a guarded client with the same call shape as ``client`` for the
        guarded methods.

    Raises:
        PolicyError: ``unsupported_object``: the client is of no supported
            kind; ``model``/
            ``endpoint`` were given for an SDK client, or a classifier the
            policy declares cannot be built (e.g. its key variable is unset).
        RegionDenied: ``insecure_url``: ``endpoint`` fails the URL rule
            (an SDK client's requests are checked the same way as they go).
        MissingIntegrationError: never for a client object (its SDK is
            installed since the object exists).
    """
    from aiinvariants.integrations._dispatch import guard_llm as dispatch

    return dispatch(
        guard,
        client,
        system_prompt=system_prompt,
        classifiers=classifiers,
        model=model,
        endpoint=endpoint,
    )
