"""Guarded clients for the official ``anthropic`` SDK (I5-I8).

``guard_anthropic(guard, client)`` (what ``guard.llm(client)`` calls for an
``anthropic`` client) returns a copy of the client, of the client's own
class, whose every HTTP request passes the wire check
(:mod:`aiinvariants.llm._wire`): the endpoint must be one the guard
understands (messages, token counting, models; Bedrock ``invoke`` and
Vertex ``rawPredict``/``streamRawPredict``), the model is read from the
body and the path, the region from the request's own URL; every string of
the answer, JSON or streamed (text, thinking, tool input, server-tool
results, citations…), passes the output pipeline. So ``messages.create``,
``messages.stream()``, ``messages.parse()``, ``count_tokens``,
``with_raw_response``, ``beta.messages`` and LangChain's ``ChatAnthropic``
all run guarded. Anthropic has no per-request data-use switch (see
:mod:`aiinvariants.llm._optout`). Bedrock's ``invoke-with-response-stream``
(AWS event-stream framing) is refused: stream through the direct API,
Vertex or ``guard.llm`` on a boto3 client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    import anthropic
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="anthropic", package="anthropic") from exc

from aiinvariants.filters.classifiers import Classifier
from aiinvariants.llm._clients import AsyncGuardedClient, GuardedClient, make_guarded
from aiinvariants.llm._guarded import CallGuard
from aiinvariants.llm._regions import Placement, declared_region, region_from_url

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = [
    "AsyncGuardedAnthropic",
    "AsyncGuardedAnthropicClient",
    "GuardedAnthropic",
    "GuardedAnthropicClient",
    "guard_anthropic",
]

_SYNC = (anthropic.Anthropic, anthropic.AnthropicBedrock, anthropic.AnthropicVertex)
_ASYNC = (
    anthropic.AsyncAnthropic,
    anthropic.AsyncAnthropicBedrock,
    anthropic.AsyncAnthropicVertex,
)


class GuardedAnthropic(GuardedClient):
    """A guarded sync ``anthropic`` client: the SDK class plus ``checks``,
    ``system_prompt`` and ``unsafe_raw_client``."""

    __slots__ = ()


class AsyncGuardedAnthropic(AsyncGuardedClient):
    """A guarded async ``anthropic`` client."""

    __slots__ = ()


if TYPE_CHECKING:

    class GuardedAnthropicClient(anthropic.Anthropic, GuardedAnthropic):
        """The static type of ``guard.llm(anthropic.Anthropic(...))``: the SDK
        client and what the guard adds (``checks``, ``system_prompt``…)."""

    class AsyncGuardedAnthropicClient(anthropic.AsyncAnthropic, AsyncGuardedAnthropic):  # type: ignore[misc]
        """The static type of ``guard.llm(anthropic.AsyncAnthropic(...))``."""

else:
    GuardedAnthropicClient = GuardedAnthropic
    AsyncGuardedAnthropicClient = AsyncGuardedAnthropic


def _placement(client: Any, declared: Mapping[str, str]) -> Placement:
    base_url = str(client.base_url)
    region = declared_region(base_url, declared)
    if region is not None:
        return Placement(region, source="declared")
    if isinstance(
        client, (anthropic.AnthropicBedrock, anthropic.AsyncAnthropicBedrock)
    ):
        aws = getattr(client, "aws_region", None)
        return Placement(aws.lower() if aws else None, source="client")
    if isinstance(client, (anthropic.AnthropicVertex, anthropic.AsyncAnthropicVertex)):
        location = str(getattr(client, "region", "") or "").lower()
        if location == "global":
            return Placement("global", routes=("*",), source="client")
        return Placement(location or None, source="client")
    return region_from_url(base_url, declared)


def guard_anthropic(
    guard: Guard,
    client: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> Any:
    """Guard an ``anthropic`` client (direct, Bedrock or Vertex; sync or async).

    Returns:
        a copy of ``client`` of a subclass of its class and of
        :class:`GuardedAnthropic` (or :class:`AsyncGuardedAnthropic`).

    Raises:
        PolicyError: ``client`` is of another kind, or already guarded.
    """
    if isinstance(client, GuardedClient):
        raise PolicyError("this anthropic client is already guarded")
    mixin: type[GuardedClient]
    if isinstance(client, _SYNC):
        mixin = GuardedAnthropic
    elif isinstance(client, _ASYNC):
        mixin = AsyncGuardedAnthropic
    else:
        raise PolicyError(
            f"guard_anthropic cannot guard a {type(client).__name__}; pass "
            "Anthropic, AsyncAnthropic, AnthropicBedrock or AnthropicVertex"
        )
    checks = CallGuard(
        guard,
        provider="anthropic",
        placement=_placement(client, guard.policy.regions.declared),
        system_prompt=system_prompt,
        classifiers=classifiers,
        resource="anthropic.messages",
    )
    return make_guarded(client, checks, "anthropic", mixin)
