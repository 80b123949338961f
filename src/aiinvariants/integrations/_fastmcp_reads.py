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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from fastmcp.exceptions import FastMCPError, to_mcp_error
from fastmcp.prompts.base import PromptResult
from fastmcp.resources.base import ResourceResult
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST

from aiinvariants.errors import InvariantViolation
from aiinvariants.integrations._fastmcp_notify import filtering
from aiinvariants.integrations._fastmcp_tools import safe_block, safe_value
from aiinvariants.principal import Principal, acting_as
from aiinvariants.resources import (
    check_prompt,
    check_read_result,
    check_resource,
)

if TYPE_CHECKING:
    from aiinvariants.integrations.fastmcp import FastMCPGuard

__all__ = ["Reads", "denial_error", "example_uri"]

Filter = Callable[[str], str]

#: Codes answered like FastMCP answers a resource or prompt it does not have.
_NOT_FOUND_CODES: Final = frozenset(
    {"resource_unknown", "prompt_unknown", "resource_uri_invalid"}
)
#: An RFC 6570 expression of a URI template.
_EXPRESSION: Final = re.compile(r"\{([+#./;?&]?)[^{}]*\}")


def denial_error(exc: InvariantViolation) -> MCPError:
    """The JSON-RPC error of a denial: codes and names only, never a token."""
    rpc = INVALID_PARAMS if exc.code in _NOT_FOUND_CODES else INVALID_REQUEST
    return MCPError(
        code=rpc,
        message=str(exc),
        data={"code": exc.code, "invariant": exc.invariant},
    )


def example_uri(template: str) -> str:
    """A concrete URI of ``template``, to decide its listing by.

    Each path expression becomes one neutral segment and query expressions
    are dropped; reading any URI of the template is decided exactly.
    """

    def fill(match: re.Match[str]) -> str:
        return "" if match.group(1) in ("?", "&", "#") else "x"

    return _EXPRESSION.sub(fill, template)


def _safe_resource(result: Any, enforce: Filter) -> Any:
    if not isinstance(result, ResourceResult):
        return result
    contents = []
    for item in result.contents:
        content = item.content
        if isinstance(content, str):
            content = enforce(content)
        elif isinstance(content, bytes):
            try:
                decoded = content.decode("utf-8")
            except UnicodeDecodeError:
                decoded = None  # binary: no text a filter reads
            if decoded is not None:
                content = enforce(decoded).encode("utf-8")
        meta = safe_value(item.meta, enforce) if item.meta is not None else None
        contents.append(item.model_copy(update={"content": content, "meta": meta}))
    meta = safe_value(result.meta, enforce) if result.meta is not None else None
    return result.model_copy(update={"contents": contents, "meta": meta})


def _safe_prompt(result: Any, enforce: Filter) -> Any:
    if not isinstance(result, PromptResult):
        return result
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
        guard = self._owner.guard
        uri = str(context.message.uri)
        who = await self._who("resource.<read>")
        denied: InvariantViolation | None = None
        try:
            check_resource(guard, uri, principal=who)
        except InvariantViolation as exc:
            denied = exc
        if denied is not None:
            raise denial_error(denied)
        return await self._run(
            who,
            context,
            call_next,
            lambda result: check_read_result(guard, result, uri=uri),
            _safe_resource,
        )

    async def get_prompt(self, context: Any, call_next: Any) -> Any:
        guard = self._owner.guard
        name = str(context.message.name)
        arguments = dict(context.message.arguments or {})
        who = await self._who(f"prompt.{name}")
        denied: InvariantViolation | None = None
        try:
            check_prompt(guard, name, principal=who, arguments=arguments)
        except InvariantViolation as exc:
            denied = exc
        if denied is not None:
            raise denial_error(denied)
        return await self._run(
            who,
            context,
            call_next,
            lambda result: check_read_result(guard, result, prompt=name),
            _safe_prompt,
        )

    async def _run(
        self,
        who: Principal,
        context: Any,
        call_next: Any,
        ceiling: Callable[[Any], None],
        safe: Callable[[Any, Filter], Any],
    ) -> Any:
        failure: MCPError | None = None
        async with acting_as(who):
            try:
                with filtering(self._owner._safe_text, self._owner._redact):
                    result = await call_next(context)
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
        # Outside the handler: nothing of the result is chained.
        raise failure

    async def check_access(self, context: Any) -> None:
        """FastMCP's resource-access hook (reads and extension metadata)."""
        who = await self._who("resource.<read>")
        try:
            check_resource(
                self._owner.guard, str(context.message.uri), principal=who, record=False
            )
        except InvariantViolation as exc:
            raise denial_error(exc) from None

    async def list_resources(self, context: Any, call_next: Any) -> Any:
        items: Sequence[Any] = await call_next(context)
        who = await self._listing_who()
        return [r for r in items if who and self._may_read(str(r.uri), who)]

    async def list_templates(self, context: Any, call_next: Any) -> Any:
        items: Sequence[Any] = await call_next(context)
        who = await self._listing_who()
        return [
            t
            for t in items
            if who and self._may_read(example_uri(str(t.uri_template)), who)
        ]

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
        return visible

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
        self._nested(check_resource, str(context.message.uri), who, "resource_unknown")
        return await call_next(context)

    async def nested_prompt(self, context: Any, call_next: Any) -> Any:
        """A mounted server's prompt, under the name it was registered with."""
        who = await self._who("prompt.<get>")
        self._nested(check_prompt, str(context.message.name), who, "prompt_unknown")
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
                check_resource(
                    self._owner.guard,
                    example_uri(uri) if "{" in uri else uri,
                    principal=who,
                )
        except InvariantViolation as exc:
            denied = exc
        if denied is not None:
            raise denial_error(denied)
        return await call_next(context)
