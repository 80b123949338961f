"""Guarded clients for the official ``openai`` SDK (I5-I8).

``guard_openai(guard, client)`` (what ``guard.llm(client)`` calls for an
``openai`` client) returns a copy of the client, of the client's own class,
whose every HTTP request passes the wire check
(:mod:`aiinvariants.llm._wire`): the endpoint must be one the guard
understands, the model (body, and the Azure deployment in the path), the
region (the request's own URL) and ``store`` are decided on the request as
sent, after ``extra_body``, ``with_options`` and base-URL changes; every
string of the answer, JSON or streamed, passes the output pipeline. So
``create``, ``stream()``, ``parse()``, ``with_raw_response``,
``with_streaming_response``, ``beta``, embeddings, the OpenAI Agents SDK and
LangChain all run guarded. For Azure OpenAI the model is a deployment name
that ``models.azure_deployments`` must map to a model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    import openai
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="openai", package="openai") from exc

from aiinvariants.filters.classifiers import Classifier
from aiinvariants.llm._clients import (
    AsyncGuardedClient,
    GuardedClient,
    make_guarded,
    refuse_websocket,
)
from aiinvariants.llm._guarded import CallGuard
from aiinvariants.llm._regions import region_from_url

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = [
    "AsyncGuardedOpenAI",
    "AsyncGuardedOpenAIClient",
    "GuardedOpenAI",
    "GuardedOpenAIClient",
    "guard_openai",
]


class _NoWebsocketAuth:
    """The openai SDK sends HTTP with ``_auth_headers(security)``; the public
    ``auth_headers`` is read only by websocket connectors (realtime, the
    Responses websocket of the SDK and of the OpenAI Agents SDK, some of which
    never call ``_prepare_options``). A guarded client does not hand its
    credentials to a connection the guard cannot see."""

    __slots__ = ()

    @property
    def auth_headers(self) -> dict[str, str]:
        """Refused: only websocket connections read it."""
        refuse_websocket(self)

    def _configure_realtime(self, *args: Any, **kwargs: Any) -> Any:
        """Refused (before any await): Azure realtime websocket credentials."""
        refuse_websocket(self)


class GuardedOpenAI(_NoWebsocketAuth, GuardedClient):
    """A guarded ``openai.OpenAI`` (or ``AzureOpenAI``): the SDK class plus
    ``checks``, ``system_prompt`` and ``unsafe_raw_client``."""

    __slots__ = ()


class AsyncGuardedOpenAI(_NoWebsocketAuth, AsyncGuardedClient):
    """A guarded ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``)."""

    __slots__ = ()


if TYPE_CHECKING:

    class GuardedOpenAIClient(openai.OpenAI, GuardedOpenAI):
        """The static type of ``guard.llm(openai.OpenAI(...))``: the SDK client
        and what the guard adds (``checks``, ``system_prompt``…)."""

    class AsyncGuardedOpenAIClient(openai.AsyncOpenAI, AsyncGuardedOpenAI):  # type: ignore[misc]
        """The static type of ``guard.llm(openai.AsyncOpenAI(...))``."""

else:
    # At run time the guarded client's class is made per SDK class; every
    # one of them is an instance of the mixin.
    GuardedOpenAIClient = GuardedOpenAI
    AsyncGuardedOpenAIClient = AsyncGuardedOpenAI


def guard_openai(
    guard: Guard,
    client: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> Any:
    """Guard an ``openai.OpenAI``/``AsyncOpenAI``/``AzureOpenAI``/``AsyncAzureOpenAI``.

    Returns:
        a copy of ``client`` of a subclass of its class and of
        :class:`GuardedOpenAI` (or :class:`AsyncGuardedOpenAI`).

    Raises:
        PolicyError: ``client`` is not one of those, or already guarded.
    """
    if isinstance(client, GuardedClient):
        raise PolicyError("this openai client is already guarded")
    azure = isinstance(client, (openai.AzureOpenAI, openai.AsyncAzureOpenAI))
    mixin: type[GuardedClient]
    if isinstance(client, openai.OpenAI):
        mixin = GuardedOpenAI
    elif isinstance(client, openai.AsyncOpenAI):
        mixin = AsyncGuardedOpenAI
    else:
        raise PolicyError(
            f"guard_openai needs an openai client, got {type(client).__name__}"
        )
    policy = guard.policy
    checks = CallGuard(
        guard,
        provider="openai",
        placement=region_from_url(str(client.base_url), policy.regions.declared),
        system_prompt=system_prompt,
        classifiers=classifiers,
        deployments=dict(policy.models.azure_deployments) if azure else None,
        resource="openai.azure" if azure else "openai",
    )
    return make_guarded(client, checks, "openai", mixin)
