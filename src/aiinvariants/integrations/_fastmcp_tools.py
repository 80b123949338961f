"""What a FastMCP tool runs, and its result made safe (see ``integrations.fastmcp``).

I3 holds for the code a tool really runs, whatever name or wrapper the
server shows it under: a ``FunctionTool``'s function (through partials,
bound methods and wrappers, which ``aiinvariants.tools`` follows), each
layer of a ``TransformedTool`` (a renamed or reshaped tool and the tool it
forwards to), the tool a mounted server runs for a namespaced name, and the
class code of any other ``Tool`` (a proxy, an OpenAPI tool, a subclass).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable
from typing import Any, Final

from fastmcp.server.providers.fastmcp_provider import FastMCPProviderTool
from fastmcp.tools.base import Tool, ToolResult
from fastmcp.tools.function_tool import FunctionTool
from fastmcp.tools.tool_transform import TransformedTool
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError

__all__ = [
    "code_of",
    "code_of_now",
    "safe_block",
    "safe_block_fields",
    "safe_bytes",
    "safe_error",
    "safe_listed",
    "safe_result",
    "safe_value",
]

#: How many tool layers (transforms of transforms, mounts of mounts) are
#: followed; deeper is refused as unreadable.
_MAX_LAYERS: Final = 32


class UnreadableTool(Exception):
    """The code of a tool could not be followed to its end."""


#: FastMCP's own ``run()`` of the tools whose code is the callables they hold.
_HOLDER_RUNS: Final = (FunctionTool.run, TransformedTool.run)


def _held(value: Any, depth: int = 0) -> list[Any]:
    """The callables a tool's field holds (in a model, list or dict too)."""
    if isinstance(value, Tool | type):
        return []  # another tool is a layer of its own; a class is not run
    if callable(value):
        return [value]
    if depth >= 2:
        return []
    if isinstance(value, BaseModel):
        value = {**vars(value), **(value.__pydantic_extra__ or {})}
    elif dataclasses.is_dataclass(value):  # an ArgTransform, say
        value = vars(value)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return [c for item in value for c in _held(item, depth + 1)]
    return []


def _own_code(tool: Tool) -> list[Any]:
    """Every piece of code ``tool`` itself runs (not the tools it forwards to).

    Its class's ``run()`` (a subclass's, a proxy's), and every callable it
    holds: a function tool's ``fn``, a transform's ``transform_fn``,
    forwarding function and argument default factories, a subclass's
    callable field.
    """
    code: list[Any] = []
    if type(tool).run not in _HOLDER_RUNS:
        code.append(tool.run)
    fields = {**vars(tool), **(tool.__pydantic_extra__ or {})}
    for name, value in fields.items():
        if name != "parent_tool":
            code.extend(_held(value))
    unique = list({id(piece): piece for piece in code}.values())
    return unique or [tool.run]


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
        found.extend((layer.name, code) for code in _own_code(layer))
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
        found.extend((layer.name, code) for code in _own_code(layer))
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


#: Fields of a content block holding base64 bytes (a blob, image or audio).
_BINARY: Final = frozenset({"blob", "data"})


#: Byte-order marks of the text encodings a client may render, by codec.
_BOMS: Final = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
#: Encodings tried when UTF-8 decodes to text interleaved with NULs.
_WIDE: Final = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


def _decoded(raw: bytes) -> tuple[str, str] | None:
    """``(text, codec)`` when ``raw`` is text a client may render, else None."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(codec), codec
            except UnicodeDecodeError:
                return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None  # binary: no text a filter reads
    if "\x00" in text:
        # UTF-16/32 without a byte-order mark is valid UTF-8 with NULs
        # between the letters, which no matcher sees through.
        # The decoding with the most ASCII letters is the one meant.
        best: tuple[int, str, str] | None = None
        for codec in _WIDE:
            try:
                wide = raw.decode(codec)
            except UnicodeDecodeError:
                continue
            score = sum(1 for ch in wide if " " <= ch <= "~")
            if "\x00" not in wide and (best is None or score > best[0]):
                best = (score, wide, codec)
        if best is not None:
            return best[1], best[2]
    return text, "utf-8"


def safe_bytes(raw: bytes, enforce: Filter) -> bytes:
    """``raw`` filtered as the text it encodes (UTF-8, UTF-16 or UTF-32)."""
    found = _decoded(raw)
    if found is None:
        return raw
    text, codec = found
    safe = enforce(text)
    return raw if safe == text else safe.encode(codec)


def _safe_binary(value: str, enforce: Filter) -> str:
    """Base64 bytes that decode to text are text the client reads."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return enforce(value)  # not base64: the client gets it as text
    safe = safe_bytes(raw, enforce)
    return value if safe is raw else base64.b64encode(safe).decode("ascii")


def _safe_fields(value: Any, enforce: Filter, depth: int) -> Any:
    if depth > _MAX_LAYERS:
        raise UnreadableTool("content block too deep")
    if isinstance(value, dict):
        return {
            enforce(k) if isinstance(k, str) else k: (
                _safe_binary(v, enforce)
                if k in _BINARY and isinstance(v, str)
                else _safe_fields(v, enforce, depth + 1)
            )
            for k, v in value.items()
        }
    return safe_value(value, enforce, depth)


def safe_block_fields(fields: Any, enforce: Filter) -> Any:
    """Dumped (JSON-mode) fields with every text, and base64 text, filtered."""
    return _safe_fields(fields, enforce, 0)


def safe_block(block: Any, enforce: Filter) -> Any:
    """``block`` with every field the client receives filtered.

    Text, ``_meta``, a link's name, title, description and URI, an embedded
    resource's URI and text, and base64 blobs, images and audio whose bytes
    are UTF-8 text: each is a route to the client, none is skipped.
    """
    if not isinstance(block, BaseModel):
        return safe_value(block, enforce)
    fields = block.model_dump(mode="json", by_alias=True, exclude_none=True)
    safe = _safe_fields(fields, enforce, 0)
    if safe == fields:
        return block
    try:
        return type(block).model_validate(safe)
    except ValidationError:
        raise UnreadableTool("a filtered content block is no longer valid") from None


#: The text a listing shows of a tool, resource, template or prompt (its
#: name or URI is what a client calls it by, and is decided, not filtered).
_LISTED: Final = (
    "title",
    "description",
    "parameters",
    "output_schema",
    "meta",
    "annotations",
)


def _safe_described(item: Any, safe_text: Filter) -> Any:
    description = getattr(item, "description", None)
    if not isinstance(item, BaseModel) or not isinstance(description, str):
        return item
    return item.model_copy(update={"description": safe_text(description)})


def safe_listed(component: Any, safe_text: Filter) -> Any:
    """``component`` as a listing may show it: its texts filtered (a schema's
    defaults and examples, descriptions, ``_meta``, a prompt's arguments)."""
    update: dict[str, Any] = {}
    for field in _LISTED:
        value = getattr(component, field, None)
        if value is not None:
            safe = (
                safe_block(value, safe_text)
                if isinstance(value, BaseModel)
                else safe_value(value, safe_text)
            )
            if safe != value:
                update[field] = safe
    arguments = getattr(component, "arguments", None)
    if isinstance(arguments, list):
        safe_arguments = [_safe_described(arg, safe_text) for arg in arguments]
        if safe_arguments != arguments:
            update["arguments"] = safe_arguments
    return component.model_copy(update=update) if update else component


def safe_error(exc: Exception, safe_text: Filter) -> Exception:
    """What the client may see in place of ``exc``: its text filtered.

    An ``MCPError`` keeps its code (a protocol error such as a missing
    client capability must reach the wire as one) with its message and
    data filtered; any other error becomes a ``RuntimeError`` with its
    filtered text (FastMCP answers it as an internal error). Raise the
    result outside the handler, so that nothing of ``exc`` is chained.
    """
    if isinstance(exc, MCPError):
        data = exc.error.data
        return MCPError(
            code=exc.error.code,
            message=safe_text(exc.error.message),
            data=None if data is None else safe_value(data, safe_text),
        )
    return RuntimeError(safe_text(str(exc)))


def safe_result(result: Any, enforce: Filter) -> Any:
    """``result`` with every text the client receives passed through ``enforce``.

    Content blocks, embedded text resources, structured content and
    ``_meta`` (keys and values at any depth); ``enforce`` raises to block,
    or returns the redacted text.
    """
    if not isinstance(result, ToolResult):
        # A protocol result an inner middleware or extension hands on as is
        # (a CallToolResult, a task handle): every field it sends, filtered.
        return safe_block(result, enforce)
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
