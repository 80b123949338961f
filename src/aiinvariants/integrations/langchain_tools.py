"""Guarded LangChain tools (I1, I2, I3, I8, I12).

``guard_tool(guard, tool, ...)`` (also ``guard.tool(...)(tool)``) returns a
:class:`GuardedLangChainTool`: a real ``langchain_core`` ``BaseTool`` with the
wrapped tool's name, description, ``args_schema``, ``response_format`` and
``return_direct``. Every way LangChain runs a tool (``invoke``, ``ainvoke``,
``run``, ``arun``, ``batch``, ``abatch``, ``stream``, a ``ToolCall`` dict
answered with a ``ToolMessage``, ``with_config``, ``bind``, ``as_tool``,
LangGraph's ``ToolNode``) ends in the wrapper's ``_run``/``_arun`` once the
input is parsed, and there:

1. the principal is resolved: the ambient ``acting_as`` one, or with
   ``principal_from_config=True`` a :class:`~aiinvariants.Principal` in
   ``config["configurable"]["principal"]`` (see ``_langchain_config``);
2. ``call_checked_tool`` decides the call with the parsed, model-visible
   arguments by name (``arguments=``): scopes, exposure, data level,
   forbidden capabilities (read again from the code at every call), run
   taint and confirmation, audit, and the run marked untrusted afterwards;
3. the wrapped tool's code runs as that principal;
4. the result, and for ``content_and_artifact`` the artifact too, passes the
   declared data level (``capped_tool``) and the output pipeline
   (``guard.output_pipeline()`` unless ``pipeline=`` is given): blocking
   findings raise :class:`~aiinvariants.OutputBlocked`, redactions replace
   the text.

The wrapped tool is copied when it is guarded, and its code (``func``,
``coroutine``, or a subclass's ``_run``/``_arun``) is registered with
``register_tool`` (a forbidden capability is refused right there) and
captured: assigning another function to the original tool afterwards has
no effect on the guarded one, and code swapped into the captured function is
caught by the call-time capability check. Denials are never turned into
tool output by ``handle_tool_error``: they are not ``ToolException``.

Injected arguments (``InjectedToolArg``, LangGraph's ``InjectedState``,
``InjectedStore``, ``ToolRuntime``) are supplied by the application, not
the model; they are left out of ``arguments=``, which carries what the model
chose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any, Final, get_type_hints

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.documents import Document
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import RunnableConfig
    from langchain_core.runnables.config import var_child_runnable_config
    from langchain_core.tools import BaseTool, StructuredTool, Tool, ToolException
    from langchain_core.tools.base import _get_runnable_config_param
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="langchain", package="langchain-core") from exc

from pydantic import BaseModel, ConfigDict, PrivateAttr

from aiinvariants import InvariantViolation, OutputBlocked, acting_as
from aiinvariants._internal.code_layers import call_caps
from aiinvariants._options import ToolDeclaration
from aiinvariants.integrations import _langgraph_threads as _threads
from aiinvariants.integrations._langchain_config import principal_for_call
from aiinvariants.tools import ToolSpec, capped_tool, check_tool

if TYPE_CHECKING:
    from aiinvariants import Guard, Principal
    from aiinvariants.filters import OutputPipeline

__all__ = ["GuardedLangChainTool", "guard_declared", "guard_tool", "is_langchain_tool"]

#: Fields of the wrapped tool the guarded one keeps.
_KEPT: Final = (
    "name",
    "description",
    "return_direct",
    "response_format",
    "verbose",
    "tags",
    "metadata",
    "handle_tool_error",
    "handle_validation_error",
    "extras",
)
_MAX_DEPTH: Final = 32


def is_langchain_tool(obj: object) -> bool:
    """True for an instance of LangChain's ``BaseTool``."""
    return isinstance(obj, BaseTool)


#: LangChain's own ``_run``/``_arun``: they only dispatch to ``func``/``coroutine``.
_DISPATCHERS: Final = frozenset(
    {
        BaseTool._run,
        BaseTool._arun,
        StructuredTool._run,
        StructuredTool._arun,
        Tool._run,
        Tool._arun,
    }
)


def _code_of(tool: BaseTool) -> tuple[Callable[..., Any] | None, ...]:
    """The code the tool runs: (sync, async, then every other piece).

    ``func``/``coroutine``, and a class's own ``_run``/``_arun`` (a subclass
    of ``StructuredTool`` may run other code than its ``func``): all of it
    is registered and checked, whichever runs.
    """
    cls = type(tool)
    run = tool._run if cls._run not in _DISPATCHERS else None
    arun = tool._arun if cls._arun not in _DISPATCHERS else None
    func = getattr(tool, "func", None)
    coroutine = getattr(tool, "coroutine", None)
    if func is None and coroutine is None:
        return (run, arun)
    return (run or func, arun or coroutine, func, coroutine)


class GuardedLangChainTool(BaseTool):
    """A LangChain tool whose every call passes the guard's tool decision.

    Build it with :func:`guard_tool`. The wrapped tool is not an attribute
    of this object's public surface: there is no ``func``, ``coroutine`` or
    ``tool`` to call around the check.

    Attributes:
        principal_from_config: read the principal from
            ``config["configurable"]["principal"]`` (see module docs).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    principal_from_config: bool = False

    _inner: Any = PrivateAttr(default=None)
    _guard: Any = PrivateAttr(default=None)
    _spec: Any = PrivateAttr(default=None)
    _code: tuple[Callable[..., Any] | None, ...] = PrivateAttr(default=())
    _pipeline: Any = PrivateAttr(default=None)

    @property
    def spec(self) -> ToolSpec:
        """The validated declaration (for tests and inspection)."""
        spec: ToolSpec = self._spec
        return spec

    @property
    def _injected_args_keys(self) -> frozenset[str]:
        # The wrapped tool's own (func, _run...) injected arguments.
        if self._inner is None:
            return frozenset()
        keys: frozenset[str] = self._inner._injected_args_keys
        return keys

    # -- the decision --------------------------------------------------------

    def _principal(self, config: RunnableConfig | None) -> Principal:
        if self._spec is None or self._inner is None or self._pipeline is None:
            # Built some other way than guard_tool (model_construct, a
            # subclass, model_validate): nothing to decide with, so refuse.
            raise PolicyError(
                "this GuardedLangChainTool was not built by guard_tool(); "
                "build it with guard_tool(guard, tool, ...)"
            )
        return principal_for_call(
            self._guard,
            config,
            enabled=self.principal_from_config,
            resource=f"tool.{self._spec.name}",
            where="guard_tool(...)",
        )

    def _arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        injected = self._injected_args_keys
        named = {k: v for k, v in kwargs.items() if k not in injected}
        if args:
            fields = list(self.args)
            for i, value in enumerate(args):
                named[fields[i] if i < len(fields) else f"arg{i}"] = value
        return named

    def _check(self, fn: Any, who: Principal, arguments: Mapping[str, Any]) -> None:
        if _code_of(self._inner) != self._code:
            raise PolicyError(
                f"tool {self._spec.name!r}: its code changed after it was "
                "guarded; guard the tool again"
            )
        # The capabilities of every piece of the tool's code, read again now
        # (code swapped into a function since is caught).
        caps = set(call_caps(fn))
        for code in self._code:
            if code is not None and code is not fn:
                caps |= call_caps(code)
        check_tool(
            self._guard,
            self._spec.name,
            spec=self._spec,
            principal=who,
            extra_capabilities=caps,
            arguments=arguments,
        )

    # -- running ---------------------------------------------------------------

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        inner = self._inner
        who = self._principal(config)
        sync_code = self._code[0]
        if sync_code is None:
            raise NotImplementedError(
                f"tool {self._spec.name!r} does not support sync invocation"
            )
        # The conversation's taint (I12): what earlier turns of the thread
        # read, kept whoever called the tool (a ToolNode or a node itself).
        runtime = _threads.graph_runtime()
        _threads.restore(self._guard, config, runtime)
        try:
            self._check(sync_code, who, self._arguments(args, kwargs))
            config, kwargs = _watched(self._pipeline, config, kwargs)
            call = _prepared(inner._run, kwargs, config, run_manager)
            failure: Exception | None = None
            with acting_as(who), _in_config(config):
                try:
                    run = capped_tool(self._guard, self._spec, inner._run)
                    result = run(*args, **call)
                except InvariantViolation:
                    raise
                except Exception as exc:  # the tool's own error: scanned below
                    failure = exc
                else:
                    return self._release(result)
            raise _safe_error(self._pipeline, failure)
        finally:
            _threads.remember(self._guard, config, runtime)

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        inner = self._inner
        who = self._principal(config)
        code = self._code[1] or self._code[0]
        runtime = _threads.graph_runtime()
        await _threads.arestore(self._guard, config, runtime)
        try:
            self._check(code, who, self._arguments(args, kwargs))
            # BaseTool's own _arun runs _run in a thread (the context, with
            # the principal and the run, copied) and passes it these arguments.
            own_async = type(inner)._arun is not BaseTool._arun
            target = inner._arun if own_async else inner._run
            config, kwargs = _watched(self._pipeline, config, kwargs)
            call = _prepared(target, kwargs, config, run_manager)
            failure: Exception | None = None
            async with acting_as(who):
                method = capped_tool(self._guard, self._spec, inner._arun)
                try:
                    with _in_config(config):
                        result = await method(*args, **call)
                except InvariantViolation:
                    raise
                except Exception as exc:  # the tool's own error: scanned below
                    failure = exc
                else:
                    return self._release(result)
            raise _safe_error(self._pipeline, failure)
        finally:
            await _threads.aremember(self._guard, config, runtime)

    # -- the result ------------------------------------------------------------

    def _release(self, result: Any) -> Any:
        pipeline = self._pipeline
        if self.response_format == "content_and_artifact" and isinstance(result, tuple):
            return tuple(_filtered(pipeline, part, 0) for part in result)
        return _filtered(pipeline, result, 0)

    # -- what must not hand out the wrapped tool -------------------------------

    def __getstate__(self) -> dict[Any, Any]:
        raise TypeError(
            "a guarded LangChain tool cannot be pickled: the copy would carry "
            "the unguarded tool; guard the tool again where it is used"
        )

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Any:
        for key in update or ():
            if key.startswith("_"):
                raise PolicyError(f"{key} of a guarded tool cannot be replaced")
        return super().model_copy(update=update, deep=deep)

    def __repr__(self) -> str:
        return f"GuardedLangChainTool(name={self.name!r})"


# -- what the tool streams while it runs (LangGraph's stream writer) ----------------

#: Where LangGraph keeps the run's ``Runtime`` (``get_stream_writer()`` reads it).
_RUNTIME_KEY: Final = "__pregel_runtime"


def _writer(pipeline: OutputPipeline, write: Callable[[Any], None]) -> Any:
    def filtered(chunk: Any) -> None:
        write(_filtered(pipeline, chunk, 0))

    return filtered


def _watched(
    pipeline: OutputPipeline, config: RunnableConfig, kwargs: dict[str, Any]
) -> tuple[RunnableConfig, dict[str, Any]]:
    """The config and arguments with every stream writer passing the pipeline.

    Inside LangGraph a tool streams to the client (``stream_mode="custom"``)
    with ``get_stream_writer()`` or an injected ``ToolRuntime``'s
    ``stream_writer``: output that never becomes the result. Both writers
    are replaced by ones that filter each chunk (a blocking finding raises
    ``OutputBlocked`` in the tool, before anything is written).
    """
    if not isinstance(config, Mapping):
        return config, kwargs  # run()/arun() without a config: not in a graph
    configurable = config.get("configurable") or {}
    runtime = configurable.get(_RUNTIME_KEY)
    write = getattr(runtime, "stream_writer", None)
    if runtime is not None and callable(write) and hasattr(runtime, "override"):
        runtime = runtime.override(stream_writer=_writer(pipeline, write))
        config = {**config, "configurable": {**configurable, _RUNTIME_KEY: runtime}}
    changed = dict(kwargs)
    for key, value in kwargs.items():
        write = getattr(value, "stream_writer", None)
        if dataclasses.is_dataclass(value) and callable(write):
            update: dict[str, Any] = {"stream_writer": _writer(pipeline, write)}
            if "config" in {f.name for f in dataclasses.fields(value)}:
                update["config"] = config
            changed[key] = dataclasses.replace(value, **update)  # type: ignore[type-var]
    return config, changed


@contextlib.contextmanager
def _in_config(config: RunnableConfig) -> Iterator[None]:
    """Run the wrapped tool with ``config`` as LangChain's current config."""
    if not isinstance(config, Mapping):
        yield
        return
    token = var_child_runnable_config.set(config)
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)


_SHAPES: Final[dict[Any, tuple[bool, str | None]]] = {}
_SHAPES_MAX: Final = 4096


def _shape(method: Callable[..., Any]) -> tuple[bool, str | None]:
    """(takes run_manager, name of its RunnableConfig parameter), cached."""
    key = getattr(method, "__func__", method)
    shape = _SHAPES.get(key)
    if shape is None:
        try:
            params = inspect.signature(method).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        shape = ("run_manager" in params, _get_runnable_config_param(method))
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[key] = shape
    return shape


def _prepared(
    method: Callable[..., Any],
    kwargs: Mapping[str, Any],
    config: RunnableConfig,
    run_manager: Any,
) -> dict[str, Any]:
    """The keyword arguments LangChain would pass to ``method``."""
    call = dict(kwargs)
    takes_manager, config_param = _shape(method)
    if takes_manager:
        call["run_manager"] = run_manager
    if config_param:
        call[config_param] = config
    return call


def _filtered(pipeline: OutputPipeline, value: Any, depth: int) -> Any:
    """``value`` with every text in it passed through the output pipeline."""
    if depth > _MAX_DEPTH:
        raise OutputBlocked(
            "a tool result too deep to scan is withheld", code="output_unscannable"
        )
    if isinstance(value, str):
        return pipeline.enforce(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, bytes | bytearray):
        # The model sees bytes as their text form: scanned whole, withheld
        # on any finding (bytes cannot be redacted in place).
        return _scanned_whole(pipeline, value, bytes(value).decode("utf-8", "replace"))
    if isinstance(value, int | float):
        return _scanned_whole(pipeline, value)  # a card number as an int
    nxt = depth + 1
    if isinstance(value, list):
        return [_filtered(pipeline, v, nxt) for v in value]
    if isinstance(value, tuple):
        return tuple(_filtered(pipeline, v, nxt) for v in value)
    if isinstance(value, Mapping):
        return {
            _filtered(pipeline, k, nxt): _filtered(pipeline, v, nxt)
            for k, v in value.items()
        }
    if isinstance(value, set | frozenset):
        return type(value)(_filtered(pipeline, v, nxt) for v in value)
    # A model or dataclass: its fields are filtered (redacted in place), then
    # its text form, what a ToolMessage shows the model, is scanned whole:
    # extra and computed fields and an own __str__ are in it, not in fields.
    if isinstance(value, Document | BaseMessage | BaseModel):
        fields = type(value).model_fields
        update = {}
        for name in fields:
            old = getattr(value, name, None)
            new = _filtered(pipeline, old, nxt)
            if new is not old:
                update[name] = new
        return _scanned_whole(
            pipeline, value.model_copy(update=update) if update else value
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        update = {}
        for f in dataclasses.fields(value):
            old = getattr(value, f.name, None)
            new = _filtered(pipeline, old, nxt)
            if new is not old:
                update[f.name] = new
        return _scanned_whole(
            pipeline, dataclasses.replace(value, **update) if update else value
        )
    # A lazy result (a generator, an iterator): each item as it is consumed.
    if isinstance(value, Iterator):
        return _filtered_items(pipeline, value, nxt)
    if isinstance(value, AsyncIterator):
        return _afiltered_items(pipeline, value, nxt)
    return _scanned_whole(pipeline, value)


def _filtered_items(
    pipeline: OutputPipeline, items: Iterator[Any], depth: int
) -> Iterator[Any]:
    for item in items:
        yield _filtered(pipeline, item, depth)


async def _afiltered_items(
    pipeline: OutputPipeline, items: AsyncIterator[Any], depth: int
) -> AsyncIterator[Any]:
    async for item in items:
        yield _filtered(pipeline, item, depth)


def _scanned_whole(
    pipeline: OutputPipeline, value: Any, text: str | None = None
) -> Any:
    # An object we cannot rebuild: its text form is scanned; any finding
    # withholds it, since it cannot be redacted in place (fail closed).
    if text is None:
        try:
            text = str(value)
        except Exception:
            text = ""
    check = pipeline.check(text)
    if check.findings:
        raise OutputBlocked(
            f"a tool result of type {type(value).__name__} carried a finding "
            "and cannot be redacted in place; it is withheld",
            findings=check.findings,
        )
    return value


_CHAIN_MAX: Final = 8


def _safe_error(pipeline: OutputPipeline, exc: Exception | None) -> Exception:
    """The wrapped tool's error, or a stand-in when its text carries a finding.

    A tool's error reaches the model: a ``ToolException`` becomes the tool's
    output under ``handle_tool_error``, and ``ToolNode(handle_tool_errors=
    True)`` shows any error's ``repr``. Its text and that of its causes pass
    the pipeline: a ``ToolException`` with redactable findings only comes
    back redacted; any other finding withholds the error
    (``OutputBlocked``), and the stand-in carries no chained cause.
    """
    assert exc is not None  # noqa: S101 - the callers pass the caught error
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain and len(chain) < _CHAIN_MAX:
        chain.append(link)
        link = link.__cause__ or link.__context__
    texts = []
    for item in chain:
        try:
            texts.append(f"{item!r}\n{item}")
        except Exception:
            texts.append(type(item).__name__)
    if link is not None and link not in chain:
        texts.append("")  # a longer chain than we read: withheld below
    whole = pipeline.check("\n".join(texts))
    if not whole.findings and len(texts) == len(chain):
        return exc
    if isinstance(exc, ToolException) and not whole.blocked:
        own = pipeline.check(str(exc))
        if not own.blocked:
            safe = ToolException(own.text)
            safe.__suppress_context__ = True
            return safe
    blocked = OutputBlocked(
        f"an error of type {type(exc).__name__} raised by the tool carried a "
        "finding; it is withheld",
        findings=[f for f in whole.findings if f.action == "block"],
    )
    blocked.__suppress_context__ = True
    return blocked


# LangChain reads the RunnableConfig parameter of _run/_arun from their type
# hints at every call; resolved once here, that costs a dict lookup.
for _method in (GuardedLangChainTool._run, GuardedLangChainTool._arun):
    _method.__annotations__ = get_type_hints(_method)


def guard_tool(
    guard: Guard,
    tool: BaseTool,
    *,
    name: str | None = None,
    scopes: Iterable[str] = (),
    any_scopes: Iterable[str] = (),
    capabilities: Iterable[str] = (),
    data: str | None = None,
    exposure: str | None = None,
    untrusted_output: bool | None = None,
    principal_from_config: bool = False,
    pipeline: OutputPipeline | None = None,
) -> GuardedLangChainTool:
    """Guard a LangChain tool (``StructuredTool``, ``@tool``, a subclass).

    Stops a model from reaching a tool with the application's authority
    (scopes come from the verified principal), an anonymous user from
    non-public data (I2), AI from a forbidden capability (I3), a tool
    result from carrying data above its declared level or a secret into the
    model's context (I1/I8), and a tainted run from exfiltrating without
    confirmation (I12).

    Args:
        guard: whose policy decides and whose audit log records.
        tool: the LangChain tool to guard (copied; the copy is guarded).
        name: the policy's name for the tool; default ``tool.name``.
        scopes: scopes that are all needed.
        any_scopes: scopes of which one is needed as well.
        capabilities: what the tool can do (``sends_external``...).
        data: the highest classification it returns; undeclared is the
            highest label (fail closed).
        exposure: ``"public"`` / ``"internal"``.
        untrusted_output: its output may carry injected instructions.
        principal_from_config: act for a :class:`~aiinvariants.Principal`
            given in ``config["configurable"]["principal"]``; stops a
            caller from smuggling a user id there (only exactly a
            ``Principal`` instance is accepted) and from two identities
            being silently reconciled (``principal_conflict``).
        pipeline: the output pipeline for results; default
            ``guard.output_pipeline()``, built now.

    Raises:
        PolicyError: ``tool`` is not a ``BaseTool``, a guarded tool of
            another guard, a malformed declaration, or a forbidden capability
            (the tool's code is refused under any name).
    """
    declaration = ToolDeclaration(
        name=name,
        scopes=scopes,
        any_scopes=any_scopes,
        capabilities=capabilities,
        data=data,
        exposure=exposure,
        untrusted_output=untrusted_output,
    )
    return _guarded(guard, tool, declaration, principal_from_config, pipeline)


def guard_declared(
    guard: Guard, tool: BaseTool, declaration: ToolDeclaration
) -> GuardedLangChainTool:
    """:func:`guard_tool` with its declaration already checked (the
    dispatch's entry point for ``guard.tool(...)(tool)``)."""
    return _guarded(guard, tool, declaration, False, None)


def _guarded(
    guard: Guard,
    tool: BaseTool,
    declaration: ToolDeclaration,
    principal_from_config: bool,
    pipeline: OutputPipeline | None,
) -> GuardedLangChainTool:
    if isinstance(tool, GuardedLangChainTool):
        raise PolicyError(f"tool {tool.name!r} is guarded already; use it as it is")
    if isinstance(tool, BaseTool):
        inner = tool
    else:
        raise PolicyError(
            f"guard_tool needs a LangChain BaseTool, got {type(tool).__name__}"
        )
    if declaration.name is not None and declaration.name != inner.name:
        # The model calls the tool by its own name: a declaration under
        # another name would let the policy's entry for it go unread.
        raise PolicyError(
            f"guard.tool(name={declaration.name!r}) on the LangChain tool "
            f"{inner.name!r}: the model calls it by its own name; rename the "
            "tool itself (its name=)",
            code="declared_name_differs",
        )
    copy = inner.model_copy()
    code = _code_of(copy)
    if not any(fn is not None for fn in code):
        raise PolicyError(f"tool {inner.name!r} has no code to run")
    declared = declaration.named(inner.name)
    spec: ToolSpec | None = None
    for fn in code:
        if fn is not None:
            spec = declared.register(guard, fn)
    if spec is None:  # pragma: no cover - code has at least one callable
        raise PolicyError(f"tool {inner.name!r} has no code to run")
    schema = inner.args_schema
    if schema is None:
        schema = inner.get_input_schema()
    fields: dict[str, Any] = {key: getattr(inner, key) for key in _KEPT}
    fields["name"] = inner.name
    guarded = GuardedLangChainTool(
        args_schema=schema,
        principal_from_config=principal_from_config,
        callbacks=inner.callbacks,
        **fields,
    )
    guarded._inner = copy
    guarded._guard = guard
    guarded._spec = spec
    guarded._code = code
    guarded._pipeline = pipeline if pipeline is not None else guard.output_pipeline()
    return guarded
