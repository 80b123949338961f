"""Resources and prompts of a guarded FastMCP server (see ``integrations.fastmcp``).

``resources/read`` runs only when :func:`~aiinvariants.resources.check_resource`
allows the URI for the caller, ``prompts/get`` only when
:func:`~aiinvariants.resources.check_prompt` allows the prompt (with its
arguments); both bodies run as the caller, and what they return passes the
declared data level (``mislabelled_source``) and the output pipeline before
the client sees it. ``resources/list``, ``resources/templates/list`` and
``prompts/list`` show only what the caller may read or get. A denial is a
JSON-RPC error carrying the stable code in ``data`` and no secret.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from fastmcp.exceptions import FastMCPError, to_mcp_error
from fastmcp.prompts.base import PromptResult
from fastmcp.resources.base import ResourceResult
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST

from aiinvariants._errors import InvariantViolation
from aiinvariants._principal import Principal, acting_as
from aiinvariants.integrations._fastmcp_core import (
    decided,
    deciding,
    requested_version,
)
from aiinvariants.integrations._fastmcp_notify import filtering
from aiinvariants.integrations._fastmcp_tools import (
    UnreadableTool,
    safe_block,
    safe_bytes,
    safe_error,
    safe_listed,
    safe_value,
)
from aiinvariants.resources import (
    check_prompt,
    check_read_result,
    check_resource,
    check_resource_template,
)

if TYPE_CHECKING:
    from aiinvariants.integrations.fastmcp import FastMCPGuard

__all__ = ["Reads", "denial_error", "route_of"]

Filter = Callable[[str], str]

#: Codes answered like FastMCP answers a resource or prompt it does not have.
_NOT_FOUND_CODES: Final = frozenset(
    {"resource_unknown", "prompt_unknown", "resource_uri_invalid"}
)


def denial_error(exc: InvariantViolation) -> MCPError:
    """The JSON-RPC error of a denial: codes and names only, never a token."""
    rpc = INVALID_PARAMS if exc.code in _NOT_FOUND_CODES else INVALID_REQUEST
    return MCPError(
        code=rpc,
        message=str(exc),
        data={"code": exc.code, "invariant": exc.invariant},
    )


def _refuse_denied(decide: Callable[[], object]) -> None:
    """Run ``decide``; a denial is raised as :func:`denial_error`, outside the
    handler, so nothing is chained."""
    denied: InvariantViolation | None = None
    try:
        decide()
    except InvariantViolation as exc:
        denied = exc
    if denied is not None:
        raise denial_error(denied)


def _safe_resource(result: Any, enforce: Filter) -> Any:
    if not isinstance(result, ResourceResult):
        return safe_block(result, enforce)  # a protocol result handed on as is
    contents = []
    for item in result.contents:
        content = item.content
        if isinstance(content, str):
            content = enforce(content)
        elif isinstance(content, bytes):
            content = safe_bytes(content, enforce)
        meta = safe_value(item.meta, enforce) if item.meta is not None else None
        contents.append(item.model_copy(update={"content": content, "meta": meta}))
    meta = safe_value(result.meta, enforce) if result.meta is not None else None
    return result.model_copy(update={"contents": contents, "meta": meta})


def _safe_prompt(result: Any, enforce: Filter) -> Any:
    if not isinstance(result, PromptResult):
        return safe_block(result, enforce)  # a protocol result handed on as is
    messages = [
        message.model_copy(update={"content": safe_block(message.content, enforce)})
        for message in result.messages
    ]
    description = (
        enforce(result.description) if result.description is not None else None
    )
    meta = safe_value(result.meta, enforce) if result.meta is not None else None
    return result.model_copy(
        update={"messages": messages, "description": description, "meta": meta}
    )


async def route_of(
    server: Any, uri: str, version: Any, safe_text: Filter
) -> str | None:
    """The resource URI or URI template FastMCP answers ``uri`` with.

    Its own policy entry is applied too (``check_resource(route=...)``): a
    template broader than the policy's best key for ``uri`` needs both.
    """
    if server is None:
        return None
    failure: Exception
    try:
        if await server.get_resource(uri, version) is not None:
            return uri
        template = await server.get_resource_template(uri, version)
    except (FastMCPError, ValueError):
        return None  # FastMCP cannot resolve it either: the read fails
    except Exception as exc:  # a provider failing: its text is filtered
        failure = safe_error(exc, safe_text)
    else:
        return None if template is None else policy_form(str(template.uri_template))
    raise failure  # outside the handler: nothing is chained


#: FastMCP's wildcard parameter ``{name*}`` (matches across ``/``).
_WILDCARD: Final = re.compile(r"\{([A-Za-z0-9_]+)\*\}")


def policy_form(template: str) -> str:
    """A FastMCP URI template in the policy's syntax: its wildcard
    ``{name*}`` is RFC 6570's reserved expansion ``{+name}``."""
    return _WILDCARD.sub(r"{+\1}", template)


def _server(context: Any) -> Any:
    ctx = context.fastmcp_context
    return getattr(ctx, "fastmcp", None) if ctx is not None else None


class Reads:
    """The resource and prompt hooks of one :class:`FastMCPGuard`."""

    def __init__(self, owner: FastMCPGuard) -> None:
        self._owner = owner

    async def _who(self, resource: str) -> Principal:
        try:
            return await self._owner._audited_principal(resource)
        except InvariantViolation as exc:
            raise denial_error(exc) from None

    async def _listing_who(self) -> Principal | None:
        try:
            return await self._owner.principal()
        except InvariantViolation:
            return None

    async def read_resource(self, context: Any, call_next: Any) -> Any:
        uri = str(context.message.uri)
        server = _server(context)
        return await self._read(
            server,
            uri,
            requested_version(context.message),
            lambda: call_next(context),
        )

    async def core_read(
        self,
        server: Any,
        uri: str,
        arguments: Any,
        version: Any,
        run: Callable[[], Awaitable[Any]],
    ) -> Any:
        """The URI FastMCP really reads (a later middleware may change it)."""
        if decided(server, "resource", uri, None):
            return await run()
        return await self._read(server, uri, version, run)

    async def _read(
        self, server: Any, uri: str, version: Any, run: Callable[[], Awaitable[Any]]
    ) -> Any:
        guard = self._owner.guard
        who = await self._who("resource.<read>")
        route = await route_of(server, uri, version, self._owner._safe_text)
        _refuse_denied(lambda: check_resource(guard, uri, principal=who, route=route))
        with deciding(server, "resource", uri, None):
            return await self._run(
                who,
                run,
                lambda result: check_read_result(guard, result, uri=uri, route=route),
                _safe_resource,
            )

    async def get_prompt(self, context: Any, call_next: Any) -> Any:
        message = context.message
        return await self._prompt(
            _server(context),
            str(message.name),
            dict(message.arguments or {}),
            lambda: call_next(context),
        )

    async def core_prompt(
        self,
        server: Any,
        name: str,
        arguments: Any,
        version: Any,
        run: Callable[[], Awaitable[Any]],
    ) -> Any:
        """The prompt FastMCP really renders (a later middleware may change it)."""
        args = dict(arguments or {})
        if decided(server, "prompt", name, args):
            return await run()
        return await self._prompt(server, name, args, run)

    async def _prompt(
        self,
        server: Any,
        name: str,
        arguments: dict[str, Any],
        run: Callable[[], Awaitable[Any]],
    ) -> Any:
        guard = self._owner.guard
        who = await self._who(f"prompt.{name}")
        _refuse_denied(
            lambda: check_prompt(guard, name, principal=who, arguments=arguments)
        )
        with deciding(server, "prompt", name, arguments):
            return await self._run(
                who,
                run,
                lambda result: check_read_result(guard, result, prompt=name),
                _safe_prompt,
            )

    async def _run(
        self,
        who: Principal,
        run: Callable[[], Awaitable[Any]],
        ceiling: Callable[[Any], None],
        safe: Callable[[Any, Filter], Any],
    ) -> Any:
        failure: Exception
        async with acting_as(who):
            try:
                with filtering(self._owner._safe_text, self._owner._redact):
                    result = await run()
                ceiling(result)
                return safe(result, self._owner._enforce)
            except InvariantViolation as exc:
                failure = denial_error(exc)
            except FastMCPError as exc:
                # A resource's or prompt's error text reaches the client too.
                failure = MCPError(
                    code=to_mcp_error(exc).error.code,
                    message=self._owner._safe_text(str(exc)),
                )
            except UnreadableTool:
                failure = MCPError(
                    code=INVALID_REQUEST,
                    message="[I8/output_blocked] the result could not be read",
                    data={"code": "output_blocked", "invariant": "I8"},
                )
            except Exception as exc:
                # An MCPError a body raised (FastMCP passes it on as is), or
                # any other error on the way: its text reaches the client.
                failure = safe_error(exc, self._owner._safe_text)
        # Outside the handler: nothing of the result is chained.
        raise failure

    async def check_access(self, context: Any) -> None:
        """FastMCP's resource-access hook (reads and extension metadata)."""
        who = await self._who("resource.<read>")
        uri = str(context.message.uri)
        version = requested_version(context.message)
        route = await route_of(_server(context), uri, version, self._owner._safe_text)
        try:
            check_resource(
                self._owner.guard, uri, principal=who, record=False, route=route
            )
        except InvariantViolation as exc:
            raise denial_error(exc) from None

    async def list_resources(self, context: Any, call_next: Any) -> Any:
        items: Sequence[Any] = await call_next(context)
        who = await self._listing_who()
        return self._listed(
            [r for r in items if who and self._may_read(str(r.uri), who)]
        )

    def _listed(self, items: list[Any]) -> list[Any]:
        return [safe_listed(item, self._owner._safe_text) for item in items]

    async def list_templates(self, context: Any, call_next: Any) -> Any:
        items: Sequence[Any] = await call_next(context)
        who = await self._listing_who()
        visible = []
        for template in items:
            try:
                if who is not None:
                    check_resource_template(
                        self._owner.guard,
                        policy_form(str(template.uri_template)),
                        principal=who,
                        record=False,
                    )
                    visible.append(template)
            except InvariantViolation:
                continue
        return self._listed(visible)

    async def list_prompts(self, context: Any, call_next: Any) -> Any:
        items: Sequence[Any] = await call_next(context)
        who = await self._listing_who()
        visible = []
        for prompt in items:
            try:
                if who is not None:
                    check_prompt(
                        self._owner.guard, prompt.name, principal=who, record=False
                    )
                    visible.append(prompt)
            except InvariantViolation:
                continue
        return self._listed(visible)

    def _may_read(self, uri: str, who: Principal) -> bool:
        try:
            check_resource(self._owner.guard, uri, principal=who, record=False)
        except InvariantViolation:
            return False
        return True

    # -- a server mounted on a guarded one ---------------------------------------

    async def nested_read(self, context: Any, call_next: Any) -> Any:
        """A mounted server's read, under the URI it was registered with.

        The parent decided the namespaced URI; a URI this server declares
        in the policy is decided too (a namespace never sheds its scopes).
        """
        who = await self._who("resource.<read>")
        uri = str(context.message.uri)
        self._nested(check_resource, uri, who, "resource_unknown")
        with deciding(_server(context), "resource", uri, None):
            return await call_next(context)

    async def nested_prompt(self, context: Any, call_next: Any) -> Any:
        """A mounted server's prompt, under the name it was registered with."""
        who = await self._who("prompt.<get>")
        name = str(context.message.name)
        self._nested(check_prompt, name, who, "prompt_unknown")
        arguments = dict(context.message.arguments or {})
        with deciding(_server(context), "prompt", name, arguments):
            return await call_next(context)

    def _nested(
        self, check: Callable[..., Any], key: str, who: Principal, unknown: str
    ) -> None:
        denied: InvariantViolation | None = None
        try:
            check(self._owner.guard, key, principal=who)
        except InvariantViolation as exc:
            if exc.code != unknown:  # undeclared here: the parent decided
                denied = exc
        if denied is not None:
            raise denial_error(denied)

    async def complete(self, context: Any, call_next: Any) -> Any:
        """``completion/complete`` reveals values of a prompt's or resource
        template's arguments: only for one the caller may get or read."""
        params = context.message
        ref = params.get("ref") if isinstance(params, dict) else None
        if not isinstance(ref, dict):
            ref = getattr(getattr(params, "ref", None), "model_dump", dict)()
        who = await self._who("completion")
        kind, key = ref.get("type"), ref.get("name") or ref.get("uri")
        denied: InvariantViolation | None = None
        try:
            if kind == "ref/prompt":
                check_prompt(self._owner.guard, str(key), principal=who)
            else:
                uri = str(key)
                if "{" in uri:
                    check_resource_template(
                        self._owner.guard, policy_form(uri), principal=who
                    )
                else:
                    check_resource(self._owner.guard, uri, principal=who)
        except InvariantViolation as exc:
            denied = exc
        if denied is not None:
            raise denial_error(denied)
        # The values the handler offers reach the client: filtered, and the
        # handler runs as the caller.
        safe_text = self._owner._safe_text
        failure: Exception
        async with acting_as(who):
            try:
                with filtering(safe_text, self._owner._redact):
                    result = await call_next(context)
                return safe_block(result, safe_text)
            except Exception as exc:
                failure = safe_error(exc, safe_text)
        raise failure  # outside the handler: nothing is chained
