"""One table from an object's type to the integration that guards it.

``guard.llm``, ``guard.retriever`` and ``guard.tool`` ask this module which
integration takes the object they were given; control then flows one way:
guard -> dispatch -> integration -> core checks. The table is keyed by the
defining module and qualified name of framework classes, looked up along the
object's MRO (so subclasses are found), and only names are compared: no
framework is imported to decide, and a framework that is not installed is
never touched. The integration module is imported once it is chosen, and
checks the object again with ``isinstance`` against the real class (a class
that only borrows a framework's name is refused there).

An object no row matches is refused with ``PolicyError`` code
``unsupported_object``, naming its type and the kinds that are supported.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from aiinvariants._errors import PolicyError

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants._options import RetrievalOptions, ToolDeclaration
    from aiinvariants.filters.classifiers import Classifier

__all__ = [
    "UNSUPPORTED",
    "Route",
    "guard_llm",
    "guard_retriever",
    "guard_tool",
    "route_of",
    "routes",
]

Kind = Literal["llm", "retriever", "tool"]

#: The code of the refusal of an object no integration guards.
UNSUPPORTED: Final = "unsupported_object"


@dataclass(frozen=True, slots=True)
class Route:
    """Where objects of one framework class go.

    Attributes:
        kind: the guard method the row serves.
        cls: ``module.QualName`` of the framework class (where it is defined).
        target: ``module:function`` of the integration entry point.
        label: how the error message names the supported kind.
    """

    kind: Kind
    cls: str
    target: str
    label: str

    def load(self) -> Callable[..., Any]:
        """The integration's entry point (imports its module now)."""
        path, _, name = self.target.partition(":")
        entry: Callable[..., Any] = getattr(importlib.import_module(path), name)
        return entry


_I: Final = "aiinvariants.integrations."


def _rows(kind: Kind, target: str, label: str, *classes: str) -> list[Route]:
    return [Route(kind, cls, _I + target, label) for cls in classes]


_TABLE: Final[tuple[Route, ...]] = (
    *_rows("llm", "openai:guard_openai", "openai client", "openai.OpenAI"),
    *_rows("llm", "openai:guard_openai", "openai client", "openai.AsyncOpenAI"),
    *_rows(
        "llm",
        "anthropic:guard_anthropic",
        "anthropic client",
        "anthropic.Anthropic",
        "anthropic.AsyncAnthropic",
        "anthropic.lib.bedrock._client.AnthropicBedrock",
        "anthropic.lib.bedrock._client.AsyncAnthropicBedrock",
        "anthropic.lib.vertex._client.AnthropicVertex",
        "anthropic.lib.vertex._client.AsyncAnthropicVertex",
    ),
    *_rows(
        "llm",
        "langchain_chat:guard_chat_openai",
        "LangChain ChatOpenAI",
        "langchain_openai.chat_models.base.BaseChatOpenAI",
    ),
    *_rows(
        "llm",
        "langchain_chat:guard_chat_anthropic",
        "LangChain ChatAnthropic",
        "langchain_anthropic.chat_models.ChatAnthropic",
    ),
    *_rows(
        "llm",
        "bedrock:guard_bedrock",
        "boto3 bedrock-runtime client or langchain-aws model",
        "botocore.client.BaseClient",
        "langchain_aws.llms.bedrock.BedrockBase",
        "langchain_aws.chat_models.bedrock_converse.ChatBedrockConverse",
        "langchain_aws.embeddings.bedrock.BedrockEmbeddings",
    ),
    *_rows(
        "retriever",
        "langchain:guard_with_options",
        "LangChain retriever or vector store",
        "langchain_core.retrievers.BaseRetriever",
        "langchain_core.vectorstores.base.VectorStore",
    ),
    *_rows(
        "retriever",
        "llamaindex:guard_with_options",
        "LlamaIndex retriever or VectorStoreIndex",
        "llama_index.core.base.base_retriever.BaseRetriever",
        "llama_index.core.indices.vector_store.base.VectorStoreIndex",
    ),
    *_rows(
        "retriever",
        "qdrant:guard_with_options",
        "QdrantClient (with collection= and embed=)",
        "qdrant_client.qdrant_client.QdrantClient",
    ),
    *_rows(
        "tool",
        "langchain_tools:guard_declared",
        "LangChain BaseTool",
        "langchain_core.tools.base.BaseTool",
    ),
    *_rows(
        "tool",
        "openai_agents:guard_declared",
        "OpenAI Agents SDK FunctionTool",
        "agents.tool.FunctionTool",
    ),
    *_rows(
        "tool",
        "_mcp_client:guard_session",
        "MCP ClientSession or Client",
        "mcp.client.session.ClientSession",
        "mcp.client.client.Client",
    ),
)

_BY_CLASS: Final[Mapping[tuple[Kind, str], Route]] = {
    (row.kind, row.cls): row for row in _TABLE
}

#: What each kind accepts besides the table's rows, for the error message.
_ALSO: Final[Mapping[Kind, str]] = {
    "llm": "any other callable",
    "retriever": "",
    "tool": "any other callable",
}


def routes(kind: Kind | None = None) -> tuple[Route, ...]:
    """The rows of the table (of one kind)."""
    return tuple(r for r in _TABLE if kind is None or r.kind == kind)


def route_of(kind: Kind, obj: object) -> Route | None:
    """The row for ``obj``'s type or its nearest listed base class, if any.

    ``type(obj)`` is read, never ``obj.__class__`` (which an object may
    fake), and a class only counts when it is the one its module really
    defines under that name: a class that borrows a framework's
    ``__module__`` and ``__qualname__`` matches no row.
    """
    for cls in type(obj).__mro__:
        row = _BY_CLASS.get((kind, f"{cls.__module__}.{cls.__qualname__}"))
        if row is not None and _defined_as_named(cls):
            return row
    return None


def _defined_as_named(cls: type) -> bool:
    # The class's module is loaded (the class exists): no import happens.
    found: object = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is cls


#: Framework classes whose objects are callable but that no integration
#: guards: as plain functions they would lose the name the policy declares
#: them by and the code they run, so they are refused.
_UNGUARDED: Final[Mapping[tuple[Kind, str], str]] = {
    ("tool", "llama_index.core.tools.types.BaseTool"): (
        "LlamaIndex tool (guard its function: guard.tool()(tool.fn))"
    ),
}


def _unguarded_of(kind: Kind, obj: object) -> str | None:
    for cls in type(obj).__mro__:
        label = _UNGUARDED.get((kind, f"{cls.__module__}.{cls.__qualname__}"))
        if label is not None and _defined_as_named(cls):
            return label
    return None


def _package(row: Route) -> str:
    # The framework package whose code serves the row: the class's module
    # without its last part ("agents.tool" -> "agents").
    module = row.cls.rpartition(".")[0]
    return module.rpartition(".")[0] or module


_PACKAGES: Final[Mapping[str, Route]] = {
    f"{row.kind}:{_package(row)}": row for row in reversed(_TABLE)
}


def _framework_code(kind: Kind, fn: object) -> str | None:
    """The framework object ``fn`` really runs, when it is no plain function.

    A bound method, ``functools.partial`` or wrapper of a framework object
    (``session.call_tool``, ``lc_tool.invoke``,
    ``client.chat.completions.create``), or a framework's own function
    (``partial(BaseTool.invoke, tool)``, an Agents ``on_invoke_tool``),
    would run that framework's object under the plain-callable guard:
    without the name the policy declares it by, or with the model, region
    and answer read from the arguments instead of the request. The walk is
    the one I3 follows code with (``_internal.code_layers.layers``).
    """
    from aiinvariants._internal.code_layers import layers

    for layer in layers(fn):
        reached = [layer]
        if isinstance(layer, functools.partial):
            # what it is called with: a guarded client there checks itself
            reached += [
                item
                for item in (*layer.args, *layer.keywords.values())
                if not _guarded_client(item)
            ]
        for item in reached:
            if isinstance(item, type):
                continue
            row = route_of(kind, item)
            if row is not None:
                return f"a {row.label} ({row.cls})"
            label = _unguarded_of(kind, item)
            if label is not None:
                return f"a {label}"
        if isinstance(layer, types.FunctionType):
            row = _in_framework(kind, getattr(layer, "__module__", None))
            if row is not None:
                return f"the code of a {row.label} ({row.cls})"
    return None


def _guarded_client(item: object) -> bool:
    if "aiinvariants.llm._clients" not in sys.modules:
        return False  # no guarded client was ever built
    from aiinvariants.llm._clients import GuardedClient

    return isinstance(item, GuardedClient)


def _in_framework(kind: Kind, module: object) -> Route | None:
    if not isinstance(module, str):
        return None
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        row = _PACKAGES.get(f"{kind}:{'.'.join(parts[:end])}")
        if row is not None:
            # The framework itself is loaded, not an app package of the
            # same name (an app's own ``agents`` package is no framework).
            return row if _loaded(row) else None
    return None


def _loaded(row: Route) -> bool:
    module, _, name = row.cls.rpartition(".")
    return isinstance(getattr(sys.modules.get(module), name, None), type)


def _refuse_framework_code(kind: Kind, obj: object) -> None:
    """Refuse a callable that runs a framework object (see above).

    Raises:
        PolicyError: ``unsupported_object``.
    """
    reached = _framework_code(kind, obj)
    if reached is not None:
        raise PolicyError(
            f"guard.{kind} cannot wrap {type(obj).__module__}."
            f"{type(obj).__qualname__} as a plain callable: it runs {reached} "
            "(a bound method, partial or wrapper of it, or its own code); "
            "guard that object itself",
            code=UNSUPPORTED,
        )


def unsupported(kind: Kind, obj: object) -> PolicyError:
    """The refusal of an object no integration of ``kind`` guards."""
    labels = list(dict.fromkeys(r.label for r in routes(kind)))
    if _ALSO[kind]:
        labels.append(_ALSO[kind])
    return PolicyError(
        f"guard.{kind} cannot wrap {type(obj).__module__}."
        f"{type(obj).__qualname__}: no integration guards it; it takes: "
        + "; ".join(labels),
        code=UNSUPPORTED,
    )


def guard_llm(
    guard: Guard,
    client: object,
    *,
    system_prompt: str | None,
    classifiers: Iterable[Classifier],
    model: str | None,
    endpoint: str | None,
) -> object:
    """``guard.llm``: the integration for ``client``'s type, else a callable."""
    row = route_of("llm", client)
    if row is None:
        if callable(client) and not isinstance(client, type):
            from aiinvariants.llm._guarded import GuardedCallable

            _refuse_framework_code("llm", client)

            return GuardedCallable(
                guard,
                client,
                model=model,
                endpoint=endpoint,
                system_prompt=system_prompt,
                classifiers=classifiers,
            )
        raise unsupported("llm", client)
    if model is not None or endpoint is not None:
        raise PolicyError(
            "model= and endpoint= are for plain callables; an SDK client's "
            "model and region are read from the call and the client"
        )
    entry = row.load()
    result: object = entry(
        guard, client, system_prompt=system_prompt, classifiers=classifiers
    )
    return result


def guard_retriever(guard: Guard, inner: object, options: RetrievalOptions) -> object:
    """``guard.retriever``: the integration for ``inner``'s type."""
    row = route_of("retriever", inner)
    if row is None:
        raise unsupported("retriever", inner)
    result: object = row.load()(guard, inner, options)
    return result


def guard_tool(guard: Guard, obj: object, declaration: ToolDeclaration) -> object:
    """``guard.tool(...)(obj)``: a framework tool, or a plain function."""
    row = route_of("tool", obj)
    if row is not None:
        result: object = row.load()(guard, obj, declaration)
        return result
    if callable(obj):
        # Any callable, a class too: its code is followed for I3 like a
        # function's (a class runs its constructor, a metaclass its __call__).
        # A framework tool reached through it is guarded as itself, never
        # as a plain function under another name.
        _refuse_framework_code("tool", obj)
        return declaration.decorator(guard)(obj)
    raise unsupported("tool", obj)
