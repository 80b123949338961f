"""Amazon Bedrock guarded at the wire, through botocore's event system (I5-I8).

``guard_bedrock(guard, client)`` (what ``guard.llm(client)`` calls for a
boto3 ``bedrock-runtime`` client, or for a langchain-aws model built on one)
registers handlers on **the client's own event emitter**, so every path of
the client passes them, whatever helper or framework calls it:

* ``before-parameter-build``: an operation the guard does not know is
  refused before anything is built (fail closed: a new botocore operation
  is refused until it is reviewed), presigned URLs are refused, the model
  id is decided early for a clear error, and Converse system prompts are
  registered with the leak filter (the app's own prompt gets its canary).
* ``before-send`` (registered last): the authoritative check, on the signed
  request about to go on the wire. The model id is read from the request
  path and the region from the request URL (:func:`bedrock_placement`), so
  an ``endpoint_url`` in another region than ``region_name``, or an
  endpoint changed after wrapping, is judged by where the request really
  goes. Model (I5), region (I6) and data-use (I7) decisions are audited.
* ``after-call``: every string of the answer that is not structural passes
  the output pipeline (Converse documents, InvokeModel bodies of any model
  family, error messages); event streams (``converse_stream``,
  ``invoke_model_with_response_stream``) are wrapped so nothing unsafe is
  yielded.

The guarded object exposes the guarded operations only; the client itself
stays hooked, so a reference the app kept is guarded too. Bedrock has no
data-use switch (see :mod:`aiinvariants.llm._optout`).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol
from urllib.parse import unquote, urlsplit

from aiinvariants._errors import (
    AuditUnavailable,
    InvariantViolation,
    MissingIntegrationError,
    ModelDenied,
    OutputBlocked,
    PolicyError,
    RegionDenied,
)
from aiinvariants._internal import strict_json
from aiinvariants._internal.canonical import fold

try:
    import botocore.client  # type: ignore[import-untyped,unused-ignore]
    import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="bedrock", package="boto3") from exc

from aiinvariants.filters.classifiers import Classifier
from aiinvariants.integrations._bedrock_output import (
    EventWalker,
    InvokeStreamFilter,
    check_across,
    check_document,
    check_json_body,
    streaming_body,
)
from aiinvariants.llm._guarded import CallGuard
from aiinvariants.llm._models import BEDROCK_PROFILE_PREFIXES, decide_model
from aiinvariants.llm._regions import Placement, bedrock_placement, decide_region
from aiinvariants.llm._streams import GuardedStream

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = ["GUARDED_OPERATIONS", "BotocoreClient", "GuardedBedrock", "guard_bedrock"]


class BotocoreClient(Protocol):
    """The static shape of a boto3 client (botocore ships no types): what
    ``guard.llm`` takes for Bedrock. Checked at run time for real."""

    @property
    def meta(self) -> Any:
        """The client's metadata (service model, events, endpoint)."""

    def can_paginate(self, operation_name: str) -> bool:
        """Whether an operation pages."""


_SERVICE: Final = "bedrock-runtime"
#: Operations that call a model: operation -> the last segment of its path.
_MODEL_OPERATIONS: Final[dict[str, str]] = {
    "Converse": "converse",
    "ConverseStream": "converse-stream",
    "InvokeModel": "invoke",
    "InvokeModelWithResponseStream": "invoke-with-response-stream",
    "CountTokens": "count-tokens",
}
#: Operations that call no model: only the region is decided.
_REGION_ONLY: Final = frozenset({"ApplyGuardrail"})
#: Every operation a guarded client runs. Any other (``StartAsyncInvoke``,
#: whose answer is written to S3 past the output pipeline; the bidirectional
#: stream; operations botocore adds later) is refused before it is built.
GUARDED_OPERATIONS: Final = frozenset(_MODEL_OPERATIONS) | _REGION_ONLY
_SYSTEM_OPERATIONS: Final = frozenset({"Converse", "ConverseStream"})
_BODY_OPERATIONS: Final = frozenset({"InvokeModel", "InvokeModelWithResponseStream"})
_MAX_CACHED: Final = 256
# A geographic prefix: "eu", "apac", "us-gov"…
_PROFILE_LIKE: Final = re.compile(r"[a-z]{2,6}(?:-[a-z]{2,4})?")


def guard_bedrock(
    guard: Guard,
    client: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> Any:
    """Guard a boto3 ``bedrock-runtime`` client (or a langchain-aws model).

    Args:
        guard: the guard whose policy applies.
        client: a botocore client for ``bedrock-runtime``, or a langchain-aws
            model (``ChatBedrockConverse``, ``ChatBedrock``, ``BedrockLLM``,
            ``BedrockEmbeddings``) whose ``client`` is one.
        system_prompt: the app's system prompt (leak filter + canary).
        classifiers: content classifiers run on every answer (I10).

    Returns:
        a :class:`GuardedBedrock` for a client; the same langchain-aws model,
        its client now guarded, for a model.

    Raises:
        PolicyError: ``client`` is neither.
    """
    # A langchain-aws model holds its boto3 client in ``client``.
    inner = (
        client
        if isinstance(client, botocore.client.BaseClient)
        else getattr(client, "client", None)
    )
    if not isinstance(inner, botocore.client.BaseClient) or (
        inner.meta.service_model.service_name != _SERVICE
    ):
        raise PolicyError(
            "guard_bedrock needs a boto3 client for 'bedrock-runtime' (or a "
            f"langchain-aws model built on one), got {type(client).__name__}"
        )
    checks = CallGuard(
        guard,
        provider="bedrock",
        placement=bedrock_placement(
            inner.meta.endpoint_url, guard.policy.regions.declared
        ),
        system_prompt=system_prompt,
        classifiers=classifiers,
        resource="bedrock.runtime",
    )
    hooks = _WireHooks(checks)
    endpoint: Any = getattr(inner, "_endpoint", None)
    if not callable(getattr(getattr(endpoint, "http_session", None), "send", None)):
        raise PolicyError(
            "guard_bedrock cannot reach this client's HTTP session, so it "
            "cannot check what is sent"
        )
    hooks.install(inner.meta.events)
    endpoint.http_session = _WireSession(endpoint.http_session, hooks)
    if inner is not client:
        return client
    return GuardedBedrock(inner, checks)


class _WireHooks:
    """The botocore event handlers of one guarded client."""

    def __init__(self, checks: CallGuard) -> None:
        self.checks = checks
        self._lock = threading.Lock()
        self._id = f"aiinvariants-{id(self)}"
        self._places: dict[str, Placement] = {}
        # The URL this thread's request was judged by in before-send: the
        # HTTP session lets exactly that URL through, and judges any other
        # (a hook that ran after the guard's changed the request) again.
        self._judged = threading.local()

    def install(self, events: Any) -> None:
        events.register(
            f"before-parameter-build.{_SERVICE}",
            self.before_build,
            unique_id=f"{self._id}-build",
        )
        events.register_last(
            f"before-send.{_SERVICE}", self.before_send, unique_id=f"{self._id}-send"
        )
        events.register_first(
            f"after-call.{_SERVICE}", self.after_call, unique_id=f"{self._id}-after"
        )

    # -- before ------------------------------------------------------------------

    def before_build(
        self, params: dict[str, Any], model: Any, context: Any = None, **_: Any
    ) -> None:
        operation = str(model.name)
        self._gate(operation)
        if isinstance(context, Mapping) and context.get("is_presign_request"):
            self._refuse(operation, "a presigned URL would send past the guard")
        if operation in _MODEL_OPERATIONS:
            policy = self.checks.guard.policy
            try:
                model_id = params.get("modelId")
                if not isinstance(model_id, str):
                    raise ModelDenied("the call names no model", code="model_unknown")
                models = policy.models
                decide_model(model_id, allow=models.allow, deny=models.deny)
            except InvariantViolation as denial:
                self._deny(denial)
        if operation in _SYSTEM_OPERATIONS and isinstance(params.get("system"), list):
            params["system"] = [
                {**b, "text": self.checks.register_system(b["text"])}
                if isinstance(b, Mapping) and isinstance(b.get("text"), str)
                else b
                for b in params["system"]
            ]
        if operation in _BODY_OPERATIONS and isinstance(
            params.get("body"), (bytes, str)
        ):
            params["body"] = self._body_system(params["body"])

    def _body_system(self, body: bytes | str) -> bytes | str:
        """Register the system texts of an InvokeModel body (canary planted).

        Anthropic bodies carry ``system`` (a string or text blocks),
        OpenAI-style bodies ``messages`` with ``role: system``. The body is
        rewritten only when the app's own prompt gets its canary.
        """
        try:
            doc = strict_json.loads(body)
        except strict_json.StrictJSONError as exc:
            if exc.problem == "syntax":  # not JSON: no system text to find
                return body
            # A key named twice (a provider may read the other "system"),
            # NaN, a lone surrogate…: what the model reads is not what this
            # registered. Not chained: the error would carry the body.
            raise PolicyError(
                f"bedrock-runtime InvokeModel: the request body is not strict "
                f"JSON ({exc.problem}); refused, since the model could read a "
                "system prompt other than the one the guard registered"
            ) from None
        if not isinstance(doc, dict):
            return body
        register = self.checks.register_system
        changed = False

        def fix(holder: Any, key: Any) -> None:
            nonlocal changed
            text = holder[key]
            safe = register(text)
            if safe != text:
                holder[key] = safe
                changed = True

        system = doc.get("system")
        if isinstance(system, str):
            fix(doc, "system")
        elif isinstance(system, list):
            for block in system:
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    fix(block, "text")
        for message in doc.get("messages") or ():
            if (
                isinstance(message, dict)
                and message.get("role") == "system"
                and isinstance(message.get("content"), str)
            ):
                fix(message, "content")
        if not changed:
            return body
        out = json.dumps(doc, ensure_ascii=False)
        return out.encode("utf-8") if isinstance(body, bytes) else out

    def before_send(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self._gate(operation)
        url = str(request.url)
        self._judged.url = None
        self._check(operation, url)
        self._judged.url = url

    def on_wire(self, request: Any) -> None:
        """The last check, in the client's HTTP session, as the request leaves.

        ``before-send`` handlers registered after the guard's (or on the
        bare ``before-send`` event, which botocore runs after the service's)
        may still change the request: a URL other than the one judged is
        judged again, its operation read from its path.
        """
        url = str(request.url)
        if getattr(self._judged, "url", None) == url:
            return
        operation = _operation_from_path(url)
        if operation is None:
            self._refuse("request", "it was changed after the guard checked it")
        self._check(operation, url)

    def _check(self, operation: str, url: str) -> None:
        self.checks.check_destination(url)  # the signed request goes there
        placement = self._placement(url)
        if operation in _REGION_ONLY:
            self._region_only(placement)
            return
        model_id = _model_from_path(url, _MODEL_OPERATIONS[operation])
        self._known_profile(model_id)
        with self._lock:
            # CallGuard reads its placement in before(); the lock keeps this
            # request's placement for this request alone.
            self.checks.placement = placement
            self.checks.before(model_id, {})

    def _placement(self, url: str) -> Placement:
        """:func:`bedrock_placement` of ``url``, cached per guarded client."""
        placement = self._places.get(url)
        if placement is None:
            declared = self.checks.guard.policy.regions.declared
            placement = bedrock_placement(url, declared)
            if len(self._places) >= _MAX_CACHED:
                self._places.clear()
            self._places[url] = placement
        return placement

    def _known_profile(self, model_id: str | None) -> None:
        """Deny an inference-profile prefix the guard does not know.

        ``geo.vendor.model`` ids route across the regions of their prefix; a
        prefix AWS adds later would route where the guard cannot tell, so
        under a region allow-list it is a denial until it is reviewed.
        """
        if model_id is None or self.checks.guard.policy.regions.allow is None:
            return
        head = _unknown_prefix(model_id)
        if head is not None:
            self._deny(
                RegionDenied(
                    f"unknown inference-profile prefix {head!r}: the regions "
                    "it routes to are not known",
                    code="cross_region_profile",
                )
            )

    def _region_only(self, placement: Placement) -> None:
        try:
            decide_region(placement, allow=self.checks.guard.policy.regions.allow)
        except InvariantViolation as denial:
            self._deny(denial)
        if self.checks.guard.audit.active:
            self.checks.guard.audit.record(
                invariant="I6",
                decision="allow",
                reason="region_allowed",
                resource=self.checks.resource,
                details={"region": placement.home, "source": placement.source},
            )

    def _gate(self, operation: str) -> None:
        if operation not in GUARDED_OPERATIONS:
            self._refuse(operation, "this operation is not guarded by aiinvariants")

    def _refuse(self, operation: str, why: str) -> NoReturn:
        guarded = ", ".join(sorted(GUARDED_OPERATIONS))
        error = PolicyError(
            f"bedrock-runtime {operation}: {why}; a guarded client runs {guarded}"
        )
        try:
            self.checks.guard.audit.record(
                invariant="I5",
                decision="deny",
                reason="operation_unguarded",
                resource=self.checks.resource,
                details={"provider": "bedrock", "operation": operation},
            )
        except AuditUnavailable as exc:
            raise error from exc
        raise error

    def _deny(self, denial: InvariantViolation) -> NoReturn:
        if denial.resource is None:
            denial.resource = self.checks.resource
        try:
            self.checks.guard.audit.record(
                invariant=denial.invariant,
                decision="deny",
                reason=denial.code,
                resource=self.checks.resource,
                details={"provider": "bedrock", "target": denial.resource},
            )
        except AuditUnavailable as exc:
            raise denial from exc
        raise denial

    # -- after -------------------------------------------------------------------

    def after_call(self, parsed: Any, model: Any, **_: Any) -> None:
        if not isinstance(parsed, dict):
            return
        operation = str(model.name)
        check = self.checks.text
        if "Error" in parsed:
            parsed.update(check_document(parsed, check))
            return
        if operation == "ConverseStream" and "stream" in parsed:
            parsed["stream"] = GuardedStream(
                _SafeErrors(parsed["stream"], check),
                EventWalker(check, self.checks.stream),
            )
        elif operation == "InvokeModelWithResponseStream" and "body" in parsed:
            parsed["body"] = GuardedStream(
                _SafeErrors(parsed["body"], check),
                InvokeStreamFilter(EventWalker(check, self.checks.stream)),
            )
        elif operation == "InvokeModel" and "body" in parsed:
            body = parsed["body"]
            raw = bytes(body.read() if hasattr(body, "read") else body)
            doc: Any = None
            with contextlib.suppress(ValueError):  # not JSON: checked whole
                doc = json.loads(raw)
            check_across(doc, self.checks.pipeline.check)
            parsed["body"] = streaming_body(check_json_body(raw, check))
        elif operation in _MODEL_OPERATIONS:
            check_across(parsed, self.checks.pipeline.check)
            parsed.update(check_document(parsed, check))


class _WireSession:
    """A botocore client's HTTP session with the guard's wire checks.

    Requests are checked as they leave (:meth:`_WireHooks.on_wire`). A
    response botocore reads whole (any non-streamed answer, any error) must
    be UTF-8: botocore's parser would otherwise raise a ``UnicodeDecodeError``
    that carries the whole unchecked body (a gzip-encoded answer is not
    decoded by botocore either), so it is refused as unreadable.
    """

    def __init__(self, inner: Any, hooks: _WireHooks) -> None:
        self._inner = inner
        self._hooks = hooks

    def send(self, request: Any) -> Any:
        if self._proxied(str(request.url)):
            # a proxy is another host: it reads a plain-http request in clear
            self._hooks.checks.check_destination(str(request.url), proxied=True)
        self._hooks.on_wire(request)
        response = self._inner.send(request)
        if response.status_code >= 300 or not getattr(request, "stream_output", False):
            _require_utf8(response.content)
        return response

    def _proxied(self, url: str) -> bool:
        """True when botocore sends ``url`` through a proxy (``proxies=`` or
        ``HTTP_PROXY`` from the environment)."""
        config = getattr(self._inner, "_proxy_config", None)
        finder = getattr(config, "proxy_url_for", None)
        return finder is not None and bool(finder(url))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _require_utf8(raw: bytes) -> None:
    readable = True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        readable = False
    if not readable:  # raised outside the except: nothing chains the body
        raise OutputBlocked(
            "the provider answered with bytes that are not UTF-8 text",
            code="unreadable_output",
        )


class _SafeErrors:
    """An event stream whose in-stream errors carry only checked text.

    A stream error (``modelStreamErrorException``…) is raised by botocore
    with the provider's message, which may echo model text: the message is
    passed through the pipeline and the error raised again, outside the
    ``except`` block so the original is not chained to it.
    """

    def __init__(self, inner: Any, check: Any) -> None:
        self._inner = inner
        self._check = check

    def __iter__(self) -> Iterator[Any]:
        caught: Any = None
        unreadable = False
        try:
            yield from self._inner
        except botocore.exceptions.EventStreamError as error:
            caught = (error.response, error.operation_name)
        except UnicodeDecodeError:  # its ``object`` is the unchecked frame
            unreadable = True
        if unreadable:
            raise OutputBlocked(
                "a stream event of the model is not UTF-8 text",
                code="unreadable_output",
            )
        if caught is not None:
            response = check_document(caught[0], self._check)
            raise botocore.exceptions.EventStreamError(response, caught[1])

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


@lru_cache(maxsize=_MAX_CACHED)
def _unknown_prefix(model_id: str) -> str | None:
    """The geographic prefix of ``model_id`` if it is not a known profile."""
    text = fold(model_id).rsplit("/", 1)[-1]
    head, _, rest = text.partition(".")
    if (
        rest.count(".") >= 1
        and head not in BEDROCK_PROFILE_PREFIXES
        and _PROFILE_LIKE.fullmatch(head)
    ):
        return head
    return None


def _operation_from_path(url: str) -> str | None:
    """The guarded operation a Bedrock request path names, if any."""
    segments = urlsplit(url).path.split("/")
    if len(segments) >= 3 and segments[-3] == "model":
        for operation, suffix in _MODEL_OPERATIONS.items():
            if segments[-1] == suffix:
                return operation
    if len(segments) >= 5 and segments[-5] == "guardrail" and segments[-1] == "apply":
        return "ApplyGuardrail"
    return None


def _model_from_path(url: str, suffix: str) -> str | None:
    """The model id of a ``…/model/{modelId}/{suffix}`` request path."""
    segments = urlsplit(url).path.split("/")
    if len(segments) >= 3 and segments[-1] == suffix and segments[-3] == "model":
        return unquote(segments[-2])
    return None


class GuardedBedrock:
    """A guarded ``bedrock-runtime`` client.

    It offers the guarded operations (``converse``, ``converse_stream``,
    ``invoke_model``, ``invoke_model_with_response_stream``,
    ``count_tokens``, ``apply_guardrail``) with the client's own signatures,
    and ``exceptions``. Anything else raises ``PolicyError``; no attribute
    hands out the client.

    Attributes:
        system_prompt: the registered system prompt with its canary planted.
        checks: the :class:`~aiinvariants.llm.CallGuard` it runs.
    """

    def __init__(self, client: Any, checks: CallGuard) -> None:
        self.__client = client
        self.checks = checks
        self.system_prompt = checks.system_prompt
        mapping = client.meta.method_to_api_mapping
        self.__methods = {
            name: op for name, op in mapping.items() if op in GUARDED_OPERATIONS
        }

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.__methods:
            return getattr(self.__client, name)
        if name == "exceptions":
            return self.__client.exceptions
        raise PolicyError(
            f"bedrock-runtime {name} is not offered by a guarded client; use "
            + ", ".join(sorted(self.__methods))
        )

    def __repr__(self) -> str:
        return f"GuardedBedrock(region={self.checks.placement.home!r})"
