"""A FastMCP server implementing the MCP conformance suite's server scenarios.

Used to compare a plain and a guarded FastMCP server under the
``@modelcontextprotocol/conformance`` CLI (Node 22), which is not part of
``make test`` (it is fetched from npm)::

    python tests/fastmcp_conformance_server.py --port 8765 [--guarded]
    conformance server --url http://localhost:8765/mcp --suite all

Guarded, the server runs behind ``guard_fastmcp`` with a public policy that
declares every tool, resource and prompt of the scenarios, and accepts the
suite's anonymous client: the guard should be transparent to it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.prompts import Message
from fastmcp.resources import ResourceContent, ResourceResult
from fastmcp.tools import Tool
from mcp_types import (
    AudioContent,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
)

from aiinvariants import Guard, Policy
from aiinvariants.integrations.fastmcp import guard_fastmcp

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
        "0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
    b"@\x1f\x00\x00@\x1f\x00\x00\x01\x00\x08\x00data\x00\x00\x00\x00"
).decode()

TOOLS = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_error_handling",
    "test_tool_with_progress",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
]
RESOURCES = [
    "test://static-text",
    "test://static-binary",
    "test://template/{id}/data",
    "test://watched-resource",
]
PROMPTS = [
    "test_simple_prompt",
    "test_prompt_with_arguments",
    "test_prompt_with_embedded_resource",
    "test_prompt_with_image",
]
PUBLIC = {"data": "public", "exposure": "public"}
POLICY = Policy.from_dict(
    {
        "app": "conformance",
        "exposure": "public",
        "tools": dict.fromkeys(TOOLS, PUBLIC),
        "resources": dict.fromkeys(RESOURCES, PUBLIC),
        "prompts": dict.fromkeys(PROMPTS, PUBLIC),
    }
)


@dataclass
class UserReply:
    username: str
    email: str


@dataclass
class Defaults:
    name: str = "John Doe"
    age: int = 30
    score: float = 95.5
    status: Literal["active", "inactive", "pending"] = "active"
    verified: bool = True


@dataclass
class Enums:
    untitled: Literal["option1", "option2", "option3"] = "option1"
    multi: list[Literal["option1", "option2", "option3"]] = field(default_factory=list)


def build(*, guarded: bool) -> FastMCP[Any]:
    server: FastMCP[Any] = FastMCP("conformance", dereference_schemas=False)
    if guarded:
        guard_fastmcp(Guard(POLICY), server, allow_anonymous=True)

    @server.tool(description="Returns simple text")
    def test_simple_text() -> str:
        return "This is a simple text response for testing."

    @server.tool(description="Returns an image")
    def test_image_content() -> ImageContent:
        return ImageContent(type="image", data=PNG, mime_type="image/png")

    @server.tool(description="Returns audio")
    def test_audio_content() -> AudioContent:
        return AudioContent(type="audio", data=WAV, mime_type="audio/wav")

    def embedded(uri: str, text: str, mime: str = "text/plain") -> EmbeddedResource:
        return EmbeddedResource(
            type="resource",
            resource=TextResourceContents(uri=uri, mime_type=mime, text=text),
        )

    @server.tool(description="Returns an embedded resource")
    def test_embedded_resource() -> EmbeddedResource:
        return embedded(
            "test://embedded-resource", "This is an embedded resource content."
        )

    @server.tool(description="Returns several content types")
    def test_multiple_content_types() -> list[Any]:
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=PNG, mime_type="image/png"),
            embedded(
                "test://mixed-content-resource",
                json.dumps({"test": "data", "value": 123}),
                "application/json",
            ),
        ]

    @server.tool(description="Logs while it runs")
    async def test_tool_with_logging(ctx: Context) -> str:
        await ctx.info("Tool execution started")
        await asyncio.sleep(0.05)
        await ctx.info("Tool processing data")
        await asyncio.sleep(0.05)
        await ctx.info("Tool execution completed")
        return "Tool with logging executed successfully"

    @server.tool(description="Always fails")
    def test_error_handling() -> str:
        raise ToolError("This tool intentionally returns an error for testing")

    @server.tool(description="Reports progress")
    async def test_tool_with_progress(ctx: Context) -> str:
        for done in (0, 50, 100):
            await ctx.report_progress(done, 100)
            if done < 100:
                await asyncio.sleep(0.05)
        return "Tool with progress executed successfully"

    @server.tool(description="Asks the client's LLM")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        answer = await ctx.sample(prompt, max_tokens=100)  # type: ignore[attr-defined]
        return f"LLM response: {getattr(answer, 'text', answer)}"

    @server.tool(description="Asks the user")
    async def test_elicitation(message: str, ctx: Context) -> str:
        result = await ctx.elicit(message, response_type=UserReply)
        return f"User response: action={result.action}"

    @server.tool(description="Elicitation with defaults")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        result = await ctx.elicit("Defaults", response_type=Defaults)
        return f"Elicitation completed: action={result.action}"

    @server.tool(description="Elicitation with enums")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        result = await ctx.elicit("Enums", response_type=Enums)
        return f"Elicitation completed: action={result.action}"

    schema_tool = Tool.from_function(
        lambda name="", address=None: "ok",
        name="json_schema_2020_12_tool",
        description="Tool with JSON Schema 2020-12 features",
    )
    server.add_tool(
        schema_tool.model_copy(
            update={
                "parameters": {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "$defs": {
                        "address": {
                            "type": "object",
                            "properties": {
                                "street": {"type": "string"},
                                "city": {"type": "string"},
                            },
                        }
                    },
                    "properties": {
                        "name": {"type": "string"},
                        "address": {"$ref": "#/$defs/address"},
                    },
                    "additionalProperties": False,
                }
            }
        )
    )

    @server.resource(
        "test://static-text", description="Static text", mime_type="text/plain"
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource(
        "test://static-binary", description="Static binary", mime_type="image/png"
    )
    def static_binary() -> bytes:
        return base64.b64decode(PNG)

    @server.resource(
        "test://template/{id}/data",
        description="Template",
        mime_type="application/json",
    )
    def template(id: str) -> ResourceResult:
        text = json.dumps(
            {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}
        )
        return ResourceResult([ResourceContent(text, mime_type="application/json")])

    @server.resource("test://watched-resource", description="Watched")
    def watched() -> str:
        return "Watched resource content"

    @server.prompt(description="A simple prompt")
    def test_simple_prompt() -> str:
        return "This is a simple prompt for testing."

    @server.prompt(description="A prompt with arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @server.prompt(description="A prompt with an embedded resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:  # noqa: N803
        return [
            Message(embedded(resourceUri, "Embedded resource content for testing.")),
            Message("Please process the embedded resource above."),
        ]

    @server.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[Message]:
        return [
            Message(ImageContent(type="image", data=PNG, mime_type="image/png")),
            Message("Please analyze the image above."),
        ]

    @server.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        return ["paris", "park", "party"]

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--guarded", action="store_true")
    args = parser.parse_args()
    app = build(guarded=args.guarded).http_app(path="/mcp")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="error")


if __name__ == "__main__":
    main()
