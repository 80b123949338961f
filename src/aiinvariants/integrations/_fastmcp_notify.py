"""What a guarded tool, resource or prompt sends *while* it runs.

A FastMCP body reaches the client by other routes than its result: log
messages (``ctx.info``...), progress messages and elicitation prompts. They
leave through the SDK's ``ServerSession``, where this module hooks them (the
I/O point, once per process): while a guarded body runs (:func:`filtering`),
every such text passes the guard's output pipeline; a blocked one is
replaced by the denial's text. Outside a guarded body the hooks do nothing.

FastMCP also writes a failing body's exception, message and traceback, to
its own server log before any middleware sees it. A filter on FastMCP's
loggers redacts, while a guarded body runs, every record's message and
traceback with the same pipeline (:func:`install_log_filter`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final

from fastmcp.server.dependencies import get_context
from mcp.server.session import ServerSession
from pydantic import BaseModel, ValidationError

from aiinvariants._errors import PolicyError
from aiinvariants.integrations._fastmcp_tools import safe_block_fields, safe_value

__all__ = ["filtering", "install_log_filter", "install_session_hooks"]

Filter = Callable[[str], str]

#: The text filter of the guarded body running in this context, if any.
_FILTER: ContextVar[Filter | None] = ContextVar(
    "aiinvariants_fastmcp_filter", default=None
)
#: The log redaction of the guarded body running in this context, if any.
_REDACT: ContextVar[Filter | None] = ContextVar(
    "aiinvariants_fastmcp_redact", default=None
)
_MARK: Final = "_aiinvariants_fastmcp_hooked"
_METHODS: Final = (
    "send_log_message",
    "send_progress_notification",
    "elicit_form",
    "elicit_url",
)
#: The session's own I/O points, under every helper: any notification, any
#: server-to-client request (elicitation, sampling) and request progress.
_IO: Final = ("_notify", "send_request", "report_progress")
#: Fields that route a message rather than carry text.
_ROUTING: Final = frozenset({"method", "progressToken", "jsonrpc"})


#: The filter of the guarded bodies a session served: a body may hand its
#: session to code that does not run in its context (a thread, a callback),
#: and what is sent on it later is filtered too.
_SESSIONS: Final[weakref.WeakKeyDictionary[Any, Filter]] = weakref.WeakKeyDictionary()


def _current_session() -> Any:
    try:
        return get_context().session
    except Exception:  # no request (a direct call): nothing to bind
        return None


@contextlib.contextmanager
def filtering(safe_text: Filter, redact: Filter) -> Iterator[None]:
    """Filter what the session sends, and redact what FastMCP logs, while the
    block runs; the request's session stays filtered after it."""
    if len(logging.root.manager.loggerDict) != _LOGGERS_SEEN[0]:
        install_log_filter()  # a FastMCP module was loaded since
    session = _current_session()
    if session is not None:
        # A session that is not weakly referable keeps the context var only.
        with contextlib.suppress(TypeError):
            _SESSIONS[session] = safe_text
    token = _FILTER.set(safe_text)
    log_token = _REDACT.set(redact)
    try:
        yield
    finally:
        _REDACT.reset(log_token)
        _FILTER.reset(token)


class _RedactingFilter(logging.Filter):
    """Redacts a record's message and traceback inside a guarded body."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact = _REDACT.get()
        if redact is None:
            return True
        try:
            message = redact(record.getMessage())
            details = record.exc_text or (
                "".join(traceback.format_exception(*record.exc_info))
                if record.exc_info and record.exc_info[0] is not None
                else None
            )
            record.exc_text = redact(details) if details else None
        except Exception:  # a filter that fails must not let the text through
            message, record.exc_text = "[log record withheld by aiinvariants]", None
        record.msg, record.args, record.exc_info = message, (), None
        return True


_LOG_FILTER: Final = _RedactingFilter()
#: How many loggers there were when the filter was last installed.
_LOGGERS_SEEN: Final = [0]


def install_log_filter() -> None:
    """Add the redacting filter to every FastMCP logger there is (idempotent).

    A logger's filters apply to the records it creates, so each FastMCP
    logger gets one; a FastMCP module loaded later (a proxy, an OpenAPI
    provider added after guarding) gets it when a guarded body next runs.
    """
    _LOGGERS_SEEN[0] = len(logging.root.manager.loggerDict)
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if name == "fastmcp" or name.startswith("fastmcp.")
    ]
    for name in names:
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


def _filter_for(session: Any) -> Filter | None:
    safe = _FILTER.get()
    if safe is None:
        try:
            safe = _SESSIONS.get(session)
        except TypeError:
            return None
    return safe


def _safe_log_data(data: Any, safe: Filter) -> Any:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
        return dataclasses.replace(data, **safe_value(fields, safe))
    return safe_value(data, safe)


def _hooked(name: str, original: Any) -> Any:
    @functools.wraps(original)
    async def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        safe = _filter_for(self)
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


def _safe_message(message: Any, safe: Filter) -> Any:
    """A notification or request with every text field filtered."""
    if not isinstance(message, BaseModel):
        return message
    fields = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    kept = {k: v for k, v in fields.items() if k in _ROUTING}
    params = {k: v for k, v in fields.items() if k not in _ROUTING}
    filtered = safe_block_fields(params, safe)
    if filtered == params:
        return message
    try:
        return type(message).model_validate({**kept, **filtered})
    except ValidationError:
        raise PolicyError("a filtered message is no longer valid; withheld") from None


def _hooked_io(name: str, original: Any) -> Any:
    @functools.wraps(original)
    async def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        safe = _filter_for(self)
        if safe is not None:
            if name == "report_progress":
                if isinstance(kwargs.get("message"), str):
                    kwargs["message"] = safe(kwargs["message"])
                elif len(args) > 2 and isinstance(args[2], str):
                    args = (*args[:2], safe(args[2]), *args[3:])
            elif args:
                args = (_safe_message(args[0], safe), *args[1:])
            else:
                key = "notification" if name == "_notify" else "request"
                if key in kwargs:
                    kwargs[key] = _safe_message(kwargs[key], safe)
        return await original(self, *args, **kwargs)

    return send


def install_session_hooks() -> None:
    """Hook the SDK session's log, progress and elicitation sends (idempotent).

    Raises:
        PolicyError: the SDK's session does not have the shape hooked here.
    """
    if getattr(ServerSession, _MARK, False):
        return
    missing = [
        m for m in (*_METHODS, *_IO) if not callable(getattr(ServerSession, m, None))
    ]
    if missing:
        raise PolicyError(
            "the MCP SDK's ServerSession has no " + ", ".join(missing) + "; "
            "refusing to guard FastMCP without filtering what tools send"
        )
    for name in _METHODS:
        setattr(ServerSession, name, _hooked(name, getattr(ServerSession, name)))
    for name in _IO:
        setattr(ServerSession, name, _hooked_io(name, getattr(ServerSession, name)))
    setattr(ServerSession, _MARK, True)
