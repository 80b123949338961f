"""An official-SDK MCP server for the MCP conformance suite's server scenarios.

``python tests/conformance_server.py PORT`` serves it unguarded on
``http://127.0.0.1:PORT/mcp``; with ``--guarded`` the same tools, resources
and prompts are guarded by :class:`~aiinvariants.integrations.mcp.MCPGuard`
(verified bearer tokens bound to the resource, per-tool, per-resource and
per-prompt scopes, filtered listings, 401/403 challenges, audit).

The suite's client sends no token: in the guarded mode a harness middleware
in front of everything adds ``Authorization: Bearer <token>`` to each request
that has none, a token this process mints for its own resource with every
scope the policy names, so the suite speaks as an *authorised* caller and
the guard verifies that token on every request like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import (
    AudioContent,
    EmbeddedResource,
    ImageContent,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

#: A 1x1 red PNG and a tiny WAV, made here (no file is read).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
WAV = (
    b"RIFF" + (36 + 2).to_bytes(4, "little") + b"WAVEfmt "
    + (16).to_bytes(4, "little") + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    + (16000).to_bytes(4, "little") + (2).to_bytes(2, "little")
    + (16).to_bytes(2, "little") + b"data" + (2).to_bytes(4, "little") + b"\x00\x00"
)  # fmt: skip

POLICY: dict[str, Any] = {
    "app": "conformance",
    "clearance": {"scopes": {"mcp:read": "internal"}},
    "tools": {
        name: {"scopes": ["mcp:tools"], "data": "internal"}
        for name in (
            "test_simple_text",
            "test_image_content",
            "test_audio_content",
            "test_embedded_resource",
            "test_multiple_content_types",
            "test_tool_with_logging",
            "test_tool_with_progress",
            "test_error_handling",
            "test_sampling",
            "test_elicitation",
            "test_elicitation_sep1034_defaults",
            "test_elicitation_sep1330_enums",
            "test_reconnection",
        )
    },
    "resources": {
        "test://static-text": {"scopes": ["mcp:read"], "data": "internal"},
        "test://static-binary": {"scopes": ["mcp:read"], "data": "internal"},
        "test://watched-resource": {"scopes": ["mcp:read"], "data": "internal"},
        "test://template/{id}/data": {"scopes": ["mcp:read"], "data": "internal"},
    },
    "prompts": {
        name: {"scopes": ["mcp:read"], "data": "internal"}
        for name in (
            "test_simple_prompt",
            "test_prompt_with_arguments",
            "test_prompt_with_embedded_resource",
            "test_prompt_with_image",
        )
    },
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build(resource: str, *, guarded: bool) -> tuple[Any, Any]:
    """The server and its ASGI app; guarded: (server, guarded app)."""
    mcp_guard = None
    token = ""
    kwargs: dict[str, Any] = {}
    if guarded:
        mcp_guard, token = _guard(resource)
        kwargs = {
            "token_verifier": mcp_guard.token_verifier,
            "auth": mcp_guard.auth_settings(
                issuer_url="https://issuer.conformance.test"
            ),
        }
    server: MCPServer[Any] = MCPServer("conformance", **kwargs)

    def tool(name: str, **options: Any) -> Callable[[Any], Any]:
        if mcp_guard is not None:
            return mcp_guard.tool(server, name=name, **options)
        return server.tool(name=name, **options)

    _tools(tool)
    _resources(server)
    _prompts(server)
    _completions(server)
    _subscriptions(server)
    app: Any = server.streamable_http_app()
    if mcp_guard is not None:
        mcp_guard.protect(server)
        app = _inject(mcp_guard.asgi(app), token)
    return server, app


def _guard(resource: str) -> tuple[Any, str]:
    from aiinvariants import Guard, Policy
    from aiinvariants.auth import JWTVerifier
    from aiinvariants.integrations.mcp import GuardTokenVerifier, MCPGuard

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = "https://issuer.conformance.test"
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "conformance", "alg": "RS256", "use": "sig"})
    policy = Policy.from_dict(POLICY)
    verifier = JWTVerifier(
        issuer=issuer, audience=resource, algorithms=["RS256"], jwks={"keys": [jwk]}
    )
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": issuer,
            "sub": "conformance-suite",
            "aud": resource,
            "iat": now - 1,
            "exp": now + 3600,
            "scope": " ".join(policy.scopes_supported),
        },
        key,
        algorithm="RS256",
        headers={"kid": "conformance", "typ": "at+jwt"},
    )
    mcp_guard = MCPGuard(
        Guard(policy), token_verifier=GuardTokenVerifier(verifier, resource=resource)
    )
    return mcp_guard, token


def _inject(app: Any, token: str) -> Any:
    header = f"Bearer {token}".encode()

    async def with_token(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope.get("type") == "http":
            headers = list(scope.get("headers", []))
            if not any(k.lower() == b"authorization" for k, _ in headers):
                scope = {**scope, "headers": [*headers, (b"authorization", header)]}
        await app(scope, receive, send)

    return with_token


def _tools(tool: Callable[..., Callable[[Any], Any]]) -> None:
    @tool("test_simple_text", description="Returns simple text")
    def test_simple_text() -> str:
        return "This is a simple text response for testing."

    @tool("test_image_content", description="Returns an image")
    def test_image_content() -> list[Any]:
        return [ImageContent(type="image", data=_b64(PNG), mime_type="image/png")]

    @tool("test_audio_content", description="Returns audio")
    def test_audio_content() -> list[Any]:
        return [AudioContent(type="audio", data=_b64(WAV), mime_type="audio/wav")]

    def embedded(uri: str, mime: str, text: str) -> EmbeddedResource:
        contents = TextResourceContents(uri=uri, mime_type=mime, text=text)
        return EmbeddedResource(type="resource", resource=contents)

    @tool("test_embedded_resource", description="Returns an embedded resource")
    def test_embedded_resource() -> list[Any]:
        return [
            embedded(
                "test://embedded-resource",
                "text/plain",
                "This is an embedded resource content.",
            )
        ]

    @tool("test_multiple_content_types", description="Returns mixed content")
    def test_multiple_content_types() -> list[Any]:
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=_b64(PNG), mime_type="image/png"),
            embedded(
                "test://mixed-content-resource",
                "application/json",
                json.dumps({"test": "data", "value": 123}),
            ),
        ]

    @tool("test_tool_with_logging", description="Logs while it runs")
    async def test_tool_with_logging(ctx: Context) -> str:
        for index, message in enumerate(
            (
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            )
        ):
            if index:
                await asyncio.sleep(0.05)
            await ctx.info(message)
        return "Logging tool completed"

    @tool("test_tool_with_progress", description="Reports progress")
    async def test_tool_with_progress(ctx: Context) -> str:
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100)
            if step < 100:
                await asyncio.sleep(0.05)
        return "Progress tool completed"

    @tool("test_error_handling", description="Always fails")
    def test_error_handling() -> str:
        raise RuntimeError("This tool intentionally returns an error for testing")

    @tool("test_sampling", description="Asks the client's model")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        message = SamplingMessage(
            role="user", content=TextContent(type="text", text=prompt)
        )
        result = await ctx.session.create_message(messages=[message], max_tokens=100)
        text = getattr(result.content, "text", "")
        return f"LLM response: {text}"

    async def elicit(ctx: Context, message: str, schema: dict[str, Any]) -> Any:
        return await ctx.session.elicit_form(message=message, requested_schema=schema)

    @tool("test_elicitation", description="Asks the user")
    async def test_elicitation(message: str, ctx: Context) -> str:
        result = await elicit(
            ctx,
            message,
            {
                "type": "object",
                "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"},
                },
                "required": ["username", "email"],
            },
        )
        return f"User response: action={result.action}, content={result.content}"

    @tool("test_elicitation_sep1034_defaults", description="Elicitation defaults")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        result = await elicit(
            ctx,
            "Defaults",
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "default": "John Doe"},
                    "age": {"type": "integer", "default": 30},
                    "score": {"type": "number", "default": 95.5},
                    "status": {
                        "type": "string",
                        "enum": ["active", "inactive", "pending"],
                        "default": "active",
                    },
                    "verified": {"type": "boolean", "default": True},
                },
            },
        )
        return (
            f"Elicitation completed: action={result.action}, content={result.content}"
        )

    @tool("test_elicitation_sep1330_enums", description="Elicitation enums")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        titled = [{"const": f"value{i}", "title": f"Option {i}"} for i in (1, 2, 3)]
        result = await elicit(
            ctx,
            "Enums",
            {
                "type": "object",
                "properties": {
                    "untitledSingle": {
                        "type": "string",
                        "enum": ["option1", "option2", "option3"],
                    },
                    "titledSingle": {"type": "string", "oneOf": titled},
                    "legacyEnum": {
                        "type": "string",
                        "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"],
                    },
                    "untitledMulti": {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "enum": ["option1", "option2", "option3"],
                        },
                    },
                    "titledMulti": {"type": "array", "items": {"anyOf": titled}},
                },
            },
        )
        return (
            f"Elicitation completed: action={result.action}, content={result.content}"
        )

    @tool("test_reconnection", description="Closes the SSE stream mid-call")
    async def test_reconnection(ctx: Context) -> str:
        close = getattr(ctx.request_context, "close_sse_stream", None)
        if close is not None:
            await close()
        await asyncio.sleep(0.1)
        return "Reconnection test completed"


def _resources(server: MCPServer[Any]) -> None:
    @server.resource(
        "test://static-text", name="static-text", description="Static text"
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource(
        "test://static-binary",
        name="static-binary",
        description="Static binary",
        mime_type="image/png",
    )
    def static_binary() -> bytes:
        return PNG

    @server.resource(
        "test://watched-resource", name="watched", description="Watched resource"
    )
    def watched() -> str:
        return "watched"

    @server.resource(
        "test://template/{id}/data",
        name="template",
        description="Template",
        mime_type="application/json",
    )
    def template(id: str) -> str:
        return json.dumps(
            {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}
        )


def _prompts(server: MCPServer[Any]) -> None:
    @server.prompt(name="test_simple_prompt", description="A simple prompt")
    def test_simple_prompt() -> str:
        return "This is a simple prompt for testing."

    @server.prompt(name="test_prompt_with_arguments", description="With arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @server.prompt(
        name="test_prompt_with_embedded_resource", description="Embeds a resource"
    )
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Any]:  # noqa: N803
        contents = TextResourceContents(
            uri=resourceUri,
            mime_type="text/plain",
            text="Embedded resource content for testing.",
        )
        return [
            {
                "role": "user",
                "content": EmbeddedResource(type="resource", resource=contents),
            },
            {
                "role": "user",
                "content": TextContent(
                    type="text", text="Please process the embedded resource above."
                ),
            },
        ]

    @server.prompt(name="test_prompt_with_image", description="Shows an image")
    def test_prompt_with_image() -> list[Any]:
        return [
            {
                "role": "user",
                "content": ImageContent(
                    type="image", data=_b64(PNG), mime_type="image/png"
                ),
            },
            {
                "role": "user",
                "content": TextContent(
                    type="text", text="Please analyze the image above."
                ),
            },
        ]


def _completions(server: MCPServer[Any]) -> None:
    @server.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Any:
        from mcp_types import Completion

        values = [v for v in ("paris", "park", "party") if v.startswith(argument.value)]
        return Completion(values=values, total=len(values), has_more=False)


def _subscriptions(server: MCPServer[Any]) -> None:
    # MCPServer serves neither subscriptions nor log levels itself: the
    # low-level server takes the handlers (the suite has scenarios for both).
    lowlevel = server._lowlevel_server
    watched: set[str] = set()

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> dict[str, Any]:
        watched.add(str(params.uri))
        return {}

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> dict[str, Any]:
        watched.discard(str(params.uri))
        return {}

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> dict[str, Any]:
        return {}

    lowlevel.add_request_handler(
        "resources/subscribe", SubscribeRequestParams, subscribe
    )
    lowlevel.add_request_handler(
        "resources/unsubscribe", UnsubscribeRequestParams, unsubscribe
    )
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--guarded", action="store_true")
    args = parser.parse_args()
    resource = f"http://127.0.0.1:{args.port}/mcp"
    _, app = build(resource, guarded=args.guarded)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
