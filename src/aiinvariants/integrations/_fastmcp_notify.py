"""What a guarded tool, resource or prompt sends the client *while* it runs.

A FastMCP body reaches the client by other routes than its result: log
messages (``ctx.info``...), progress messages and elicitation prompts. They
leave through the SDK's ``ServerSession``, where this module hooks them (the
I/O point, once per process): while a guarded body runs (:func:`filtering`),
every such text passes the guard's output pipeline; a blocked one is
replaced by the denial's text. Outside a guarded body the hooks do nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final

from mcp.server.session import ServerSession

from aiinvariants.errors import PolicyError
from aiinvariants.integrations._fastmcp_tools import safe_value

__all__ = ["filtering", "install_session_hooks"]

Filter = Callable[[str], str]

#: The text filter of the guarded body running in this context, if any.
_FILTER: ContextVar[Filter | None] = ContextVar(
    "aiinvariants_fastmcp_filter", default=None
)
_MARK: Final = "_aiinvariants_fastmcp_hooked"
_METHODS: Final = (
    "send_log_message",
    "send_progress_notification",
    "elicit_form",
    "elicit_url",
)


@contextlib.contextmanager
def filtering(safe_text: Filter) -> Iterator[None]:
    """Filter what the session sends while the block runs."""
    token = _FILTER.set(safe_text)
    try:
        yield
    finally:
        _FILTER.reset(token)


def _safe_log_data(data: Any, safe: Filter) -> Any:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
        return dataclasses.replace(data, **safe_value(fields, safe))
    return safe_value(data, safe)


def _hooked(name: str, original: Any) -> Any:
    @functools.wraps(original)
    async def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        safe = _FILTER.get()
        if safe is not None:
            if name == "send_log_message":
                key, index = "data", 1
            elif name == "send_progress_notification":
                key, index = "message", 3
            else:
                key, index = "message", 0
            if key in kwargs:
                kwargs[key] = _safe_arg(kwargs[key], safe)
            elif len(args) > index:
                args = (*args[:index], _safe_arg(args[index], safe), *args[index + 1 :])
            if isinstance(kwargs.get("logger"), str):
                kwargs["logger"] = safe(kwargs["logger"])
        return await original(self, *args, **kwargs)

    return send


def _safe_arg(value: Any, safe: Filter) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return safe(value)
    return _safe_log_data(value, safe)


def install_session_hooks() -> None:
    """Hook the SDK session's log, progress and elicitation sends (idempotent).

    Raises:
        PolicyError: the SDK's session does not have the shape hooked here.
    """
    if getattr(ServerSession, _MARK, False):
        return
    missing = [m for m in _METHODS if not callable(getattr(ServerSession, m, None))]
    if missing:
        raise PolicyError(
            "the MCP SDK's ServerSession has no " + ", ".join(missing) + "; "
            "refusing to guard FastMCP without filtering what tools send"
        )
    for name in _METHODS:
        setattr(ServerSession, name, _hooked(name, getattr(ServerSession, name)))
    setattr(ServerSession, _MARK, True)
