"""What a guarded FastMCP server really runs (see ``integrations.fastmcp``).

The guard's middleware decides a ``tools/call``, ``resources/read`` or
``prompts/get`` first in the chain, on the name (or URI) and arguments it
sees. A middleware after it can hand ``call_next`` another context: another
tool, URI or prompt, other arguments. FastMCP runs what the *last* context
names, through the server's own ``call_tool`` / ``read_resource`` /
``render_prompt`` with ``run_middleware=False``; those three are hooked on
the guarded server (:func:`hook_core`). What reaches them is compared with
what was decided (:func:`deciding`), and anything else - or a core call no
guarded middleware decided at all - is decided again, as the same caller,
before it runs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from fastmcp.utilities.versions import VersionSpec

from aiinvariants._errors import ToolForbidden

__all__ = ["Gate", "decided", "deciding", "hook_core", "requested_version"]

#: ``gate(server, key, arguments, version, run)``: decide, then ``await run()``.
Gate = Callable[[Any, str, Any, Any, Callable[[], Awaitable[Any]]], Awaitable[Any]]

#: The server methods FastMCP runs a component through, by kind.
_CORE: Final = {
    "tool": "call_tool",
    "resource": "read_resource",
    "prompt": "render_prompt",
}


@dataclass(frozen=True)
class _Decision:
    server: Any
    kind: str
    key: str
    arguments: Any
    #: Names of the inner layers decided with it (a mounted server's tool).
    inner: frozenset[str]


_DECIDED: ContextVar[_Decision | None] = ContextVar(
    "aiinvariants_fastmcp_decided", default=None
)


@contextlib.contextmanager
def deciding(
    server: Any,
    kind: str,
    key: str,
    arguments: Any,
    inner: frozenset[str] = frozenset(),
) -> Iterator[None]:
    """While the block runs, ``key`` with ``arguments`` is what was decided
    (and ``inner``, the names its layers run on servers mounted below)."""
    token = _DECIDED.set(_Decision(server, kind, key, arguments, inner))
    try:
        yield
    finally:
        _DECIDED.reset(token)


def decided(server: Any, kind: str, key: str, arguments: Any) -> bool:
    """Whether this very request was decided: the request the guard's
    middleware decided on ``server``, or, on a server mounted below it, a
    layer decided with it (its arguments may be reshaped by a transform)."""
    current = _DECIDED.get()
    if current is None or current.kind != kind:
        return False
    if current.server is server:
        return current.key == key and current.arguments == arguments
    return key in current.inner


def hook_core(server: Any, owner: object, gates: dict[str, Gate]) -> None:
    """Route the server's core ``call_tool``/``read_resource``/``render_prompt``
    (``run_middleware=False``) through ``gates`` (idempotent per owner)."""
    for kind, gate in gates.items():
        attr = _CORE[kind]
        original = getattr(server, attr)
        if getattr(original, "_aiinvariants_guard", None) is owner:
            continue
        setattr(server, attr, _hooked(server, original, gate, owner))


def _hooked(server: Any, original: Any, gate: Gate, owner: object) -> Any:
    @functools.wraps(original)
    async def core(
        key: Any,
        arguments: Any = None,
        *,
        version: Any = None,
        run_middleware: bool = True,
    ) -> Any:
        extra = () if arguments is None else (arguments,)
        if run_middleware:
            return await original(key, *extra, version=version)

        async def run() -> Any:
            return await original(key, *extra, version=version, run_middleware=False)

        return await gate(server, str(key), arguments, version, run)

    core._aiinvariants_guard = owner  # type: ignore[attr-defined]
    return core


def requested_version(params: Any) -> Any:
    """The tool version a call pins (``_meta.fastmcp.version``), as FastMCP
    reads it: the code decided is the code that runs."""
    meta = getattr(params, "meta", None)
    fastmcp_meta = meta.get("fastmcp") if isinstance(meta, Mapping) else None
    version = fastmcp_meta.get("version") if isinstance(fastmcp_meta, Mapping) else None
    if version is None:
        return None
    if isinstance(version, str):
        return VersionSpec(eq=version)
    if isinstance(version, Mapping):
        return VersionSpec(
            **{k: str(v) for k, v in version.items() if k in ("eq", "gte", "lt")}
        )
    raise ToolForbidden("a tool version must be a string", code="tool_unknown")
