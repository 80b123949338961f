"""Registration of a guarded FastMCP server (see ``integrations.fastmcp``).

I3 at registration: a tool whose code or declaration carries a forbidden
capability cannot be added to the server, to a provider or server mounted
on it, or by a middleware that injects tools; what is there when the
server is guarded is checked too. A mounted server gets the nested
middleware that decides its reads and prompts under its own names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import fastmcp as _fastmcp
from fastmcp import FastMCP
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.server.middleware.tool_injection import ToolInjectionMiddleware
from fastmcp.server.providers.fastmcp_provider import FastMCPProvider
from fastmcp.server.providers.local_provider import LocalProvider
from fastmcp.tools.base import Tool

from aiinvariants._errors import PolicyError
from aiinvariants.integrations._fastmcp_core import hook_core
from aiinvariants.integrations._fastmcp_tools import UnreadableTool, code_of_now
from aiinvariants.tools import register_tool

if TYPE_CHECKING:
    from aiinvariants.integrations.fastmcp import FastMCPGuard

#: The oldest FastMCP whose middleware, providers and transforms this knows.
_MIN_MAJOR: Final = 4


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else -1


def check_shape(server: object) -> None:
    """Fail closed on a FastMCP this integration does not know."""
    if _major(str(getattr(_fastmcp, "__version__", ""))) < _MIN_MAJOR:
        raise PolicyError(
            f"aiinvariants.integrations.fastmcp needs fastmcp>={_MIN_MAJOR}; "
            f"found {getattr(_fastmcp, '__version__', 'unknown')!r}"
        )
    if not isinstance(server, FastMCP):
        raise PolicyError(
            f"guard_fastmcp() guards a fastmcp.FastMCP server, not "
            f"{type(server).__name__}"
        )
    local = getattr(server, "local_provider", None)
    if (
        not isinstance(getattr(server, "middleware", None), list)
        or not isinstance(local, LocalProvider)
        or not callable(getattr(local, "_add_component", None))
        or not isinstance(getattr(local, "_components", None), dict)
        or not callable(getattr(server, "add_provider", None))
        or not isinstance(getattr(server, "providers", None), list)
    ):
        raise PolicyError(
            "this FastMCP server does not have the shape aiinvariants hooks "
            "(middleware list, local provider, add_provider); refusing to "
            "serve it unguarded - pin a supported fastmcp version"
        )


class _NestedMiddleware(Middleware):
    """What a :class:`FastMCPGuard` puts on a server mounted on a guarded one:
    a resource or prompt declared under its own (un-namespaced) name is
    decided under that name too."""

    def __init__(self, owner: FastMCPGuard) -> None:
        self.owner = owner

    async def on_read_resource(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self.owner._reads.nested_read(context, call_next)

    async def on_get_prompt(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self.owner._reads.nested_prompt(context, call_next)


class Registration:
    """The registration hooks of one :class:`FastMCPGuard`."""

    def __init__(self, owner: FastMCPGuard) -> None:
        self._owner = owner

    def hook_local(self, local: Any) -> None:
        # What is there now is checked every time (a refused mount leaves
        # its tools in place), then later additions are hooked once.
        for component in list(local._components.values()):
            self.check_component(component)
        original = local._add_component
        if getattr(original, "_aiinvariants_guard", None) is self._owner:
            return

        def add_component(component: Any) -> Any:
            self.check_component(component)
            return original(component)

        add_component._aiinvariants_guard = self._owner  # type: ignore[attr-defined]
        local._add_component = add_component

    def hook_add_provider(self, server: Any) -> None:
        original = server.add_provider
        if getattr(original, "_aiinvariants_guard", None) is self._owner:
            return

        def add_provider(provider: Any, *args: Any, **kwargs: Any) -> Any:
            self.check_provider(provider)
            return original(provider, *args, **kwargs)

        add_provider._aiinvariants_guard = self._owner  # type: ignore[attr-defined]
        server.add_provider = add_provider

    def hook_add_middleware(self, server: Any) -> None:
        original = server.add_middleware
        if getattr(original, "_aiinvariants_guard", None) is self._owner:
            return

        def add_middleware(middleware: Any) -> Any:
            self.check_middleware(middleware)
            return original(middleware)

        add_middleware._aiinvariants_guard = self._owner  # type: ignore[attr-defined]
        server.add_middleware = add_middleware

    def check_middleware(self, middleware: Any) -> None:
        """Tools a middleware injects are registered tools too."""
        if isinstance(middleware, ToolInjectionMiddleware):
            for tool in list(middleware.injected_tools):
                self.check_registration(tool)

    def check_provider(self, provider: Any, depth: int = 0) -> None:
        """Refuse forbidden code in a provider, and hook a mounted server."""
        if depth > 16:
            raise PolicyError("providers nested too deeply to check")
        inner = getattr(provider, "_inner", None)
        if inner is not None:  # a provider wrapped by a transform
            self.check_provider(inner, depth + 1)
        if isinstance(provider, LocalProvider):
            self.hook_local(provider)
        elif isinstance(provider, FastMCPProvider):
            child = provider.server
            check_shape(child)
            for nested in list(child.providers):
                self.check_provider(nested, depth + 1)
            self.hook_add_provider(child)
            self.nest(child)
            hook_core(
                child,
                self._owner,
                {
                    "tool": self._owner._core_tool,
                    "resource": self._owner._reads.core_read,
                    "prompt": self._owner._reads.core_prompt,
                },
            )

    def nest(self, child: Any) -> None:
        """Decide a mounted server's reads and prompts under its own names."""
        if any(
            isinstance(m, _NestedMiddleware) and m.owner is self._owner
            for m in child.middleware
        ):
            return
        child.middleware.insert(0, _NestedMiddleware(self._owner))

    def check_component(self, component: Any) -> None:
        task = getattr(component, "task_config", None)
        if task is not None and task.supports_tasks():
            # A background task's result is fetched by a later request that
            # no middleware hook sees: its output would skip the filters.
            raise PolicyError(
                f"{type(component).__name__} {getattr(component, 'name', '')!r} "
                "runs as a background task (task=...), which a guarded FastMCP "
                "server does not support yet; register it without task="
            )
        if isinstance(component, Tool):
            self.check_registration(component)

    def check_registration(self, tool: Tool) -> None:
        """I3 at registration: every layer of the tool's code, under its name."""
        try:
            layers = code_of_now(tool)
        except UnreadableTool:
            raise PolicyError(
                f"tool {tool.name!r}: its code could not be followed; refused"
            ) from None
        for layer_name, fn in layers:
            # Under the name it was registered as in that layer: a transform
            # that renames a tool keeps the original's declaration too.
            declared = self._owner._specs.get(layer_name)
            register_tool(
                self._owner.guard,
                fn,
                name=layer_name,
                capabilities=declared.capabilities if declared else (),
            )
