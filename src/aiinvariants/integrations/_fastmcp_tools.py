"""What a FastMCP tool runs, and its result made safe (see ``integrations.fastmcp``).

I3 holds for the code a tool really runs, whatever name or wrapper the
server shows it under: a ``FunctionTool``'s function (through partials,
bound methods and wrappers, which ``aiinvariants.tools`` follows), each
layer of a ``TransformedTool`` (a renamed or reshaped tool and the tool it
forwards to), the tool a mounted server runs for a namespaced name, and the
class code of any other ``Tool`` (a proxy, an OpenAPI tool, a subclass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastmcp.server.providers.fastmcp_provider import FastMCPProviderTool
from fastmcp.tools.base import Tool, ToolResult
from fastmcp.tools.function_tool import FunctionTool
from fastmcp.tools.tool_transform import TransformedTool
from mcp_types import EmbeddedResource, TextContent, TextResourceContents

__all__ = ["code_of", "code_of_now", "safe_block", "safe_result", "safe_value"]

#: How many tool layers (transforms of transforms, mounts of mounts) are
#: followed; deeper is refused as unreadable.
_MAX_LAYERS: Final = 32


class UnreadableTool(Exception):
    """The code of a tool could not be followed to its end."""


def _own_code(tool: Tool) -> Any:
    if isinstance(tool, FunctionTool):
        return tool.fn
    # Any other tool runs its class's code: a subclass's run(), a proxy.
    return tool.run


#: One layer of a tool: the name it was registered under there, and its code.
Layer = tuple[str, Any]


def code_of_now(tool: Tool) -> list[Layer]:
    """Every layer of ``tool`` that can be known without I/O.

    A mounted server's tool is resolved at call time (:func:`code_of`).
    """
    found: list[Layer] = []
    layer: Tool | None = tool
    for _ in range(_MAX_LAYERS):
        if layer is None:
            return found
        found.append((layer.name, _own_code(layer)))
        layer = layer.parent_tool if isinstance(layer, TransformedTool) else None
    raise UnreadableTool(tool.name)


async def code_of(tool: Tool) -> list[Layer]:
    """Every layer ``tool`` runs, outermost first, mounted servers' included.

    A renamed tool (a transform, a namespace, a mount's ``tool_names``)
    keeps the name it was registered under in an inner layer: the policy of
    each name applies.

    Raises:
        UnreadableTool: too many layers, or a mounted server no longer has
            the tool it forwards to.
    """
    found: list[Layer] = []
    todo: list[Tool] = [tool]
    steps = 0
    while todo:
        steps += 1
        if steps > _MAX_LAYERS:
            raise UnreadableTool(tool.name)
        layer = todo.pop()
        found.append((layer.name, _own_code(layer)))
        if isinstance(layer, TransformedTool):
            todo.append(layer.parent_tool)
        elif isinstance(layer, FastMCPProviderTool):
            child = getattr(layer, "_server", None)
            name = getattr(layer, "_original_name", None)
            inner = await child.get_tool(name) if child and name else None
            if inner is None:
                raise UnreadableTool(tool.name)
            todo.append(inner)
    return found


Filter = Callable[[str], str]


def safe_value(value: Any, enforce: Filter, depth: int = 0) -> Any:
    if depth > _MAX_LAYERS:
        raise UnreadableTool("structured content too deep")
    if isinstance(value, str):
        return enforce(value)
    if isinstance(value, dict):
        return {
            enforce(k) if isinstance(k, str) else k: safe_value(v, enforce, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [safe_value(v, enforce, depth + 1) for v in value]
    return value


def safe_block(block: Any, enforce: Filter) -> Any:
    if isinstance(block, TextContent):
        return block.model_copy(update={"text": enforce(block.text)})
    if isinstance(block, EmbeddedResource) and isinstance(
        block.resource, TextResourceContents
    ):
        inner = block.resource.model_copy(update={"text": enforce(block.resource.text)})
        return block.model_copy(update={"resource": inner})
    return block  # images, audio, links: no text a filter reads


def safe_result(result: Any, enforce: Filter) -> Any:
    """``result`` with every text the client receives passed through ``enforce``.

    Content blocks, embedded text resources, structured content and
    ``_meta`` (keys and values at any depth); ``enforce`` raises to block,
    or returns the redacted text.
    """
    if not isinstance(result, ToolResult):
        return result  # a task handle: carries no tool output
    content = [safe_block(block, enforce) for block in result.content]
    structured = (
        safe_value(result.structured_content, enforce)
        if result.structured_content is not None
        else None
    )
    meta = safe_value(result.meta, enforce) if result.meta is not None else None
    return result.model_copy(
        update={"content": content, "structured_content": structured, "meta": meta}
    )
