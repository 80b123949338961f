"""The two option sets every entry point shares: retrieval and tool declarations.

``guard.retriever``, ``retrieval.secure_retriever`` and the LangChain,
LlamaIndex and Qdrant entry points take the same retrieval keywords; each
builds one :class:`RetrievalOptions` from them, which checks them once, and
hands that object on. ``guard.tool``, ``register_tool`` and the MCP, FastMCP,
LangChain and OpenAI Agents declarations do the same with
:class:`ToolDeclaration`. What depends on the policy (a label it knows, the
exposure rule) is decided where the policy is at hand; what these objects
check is the shape of each value, so a bad keyword is refused with its name
before anything is wrapped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeVar

from typing_extensions import ParamSpec

from aiinvariants._classification import Authorizer
from aiinvariants._errors import PolicyError

if TYPE_CHECKING:
    from aiinvariants._guard import Guard
    from aiinvariants.resources import ResourceSpec
    from aiinvariants.tools import GuardedTool, ToolSpec

__all__ = ["RetrievalKeywords", "RetrievalOptions", "ToolDeclaration"]

P = ParamSpec("P")
R = TypeVar("R")

_EXPOSURES: Final = ("public", "internal")


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{name}= must be a positive integer, got {value!r}")


def _names(name: str, value: object) -> tuple[str, ...]:
    # A bare string is a collection of its letters: almost always a mistake
    # that would turn "tickets:read" into eleven one-letter scopes.
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise PolicyError(f"{name}= takes a collection of names, not {value!r}")
    items = tuple(value)
    if not all(isinstance(item, str) and item for item in items):
        raise PolicyError(f"{name}= takes non-empty strings")
    return items


def _optional_text(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise PolicyError(f"{name}= must be a non-empty string or None")


def _flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise PolicyError(f"{name}= must be True or False, got {value!r}")


class RetrievalKeywords(TypedDict, total=False):
    """The retrieval keywords, for ``**options`` signatures (see below)."""

    k: int | None
    data: str | None
    requires_authentication: bool
    authorizer: Authorizer | None
    labels: Sequence[str] | None
    source: str | None
    max_rounds: int
    fetch_multiplier: int
    max_fetch: int
    cache_size: int
    principal_from_config: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrievalOptions:
    """The options of one secure retriever, checked once.

    Collections given are kept as tuples (a bare string is refused).

    Attributes:
        k: documents returned by default; None: the inner retriever's ``k``
            where it has one, else 4.
        data: the highest label the source holds; None counts as the
            highest label (fail closed).
        requires_authentication: refuse anonymous principals.
        authorizer: decides per document; None: the label rule.
        labels: the only labels the retriever may return.
        source: the source's name in audit events; None: the store's type.
        max_rounds: bound on store round-trips per query.
        fetch_multiplier: fetch-size growth between rounds.
        max_fetch: bound on the documents asked for in one round.
        cache_size: authorization-keyed cache entries; 0 turns it off.
        principal_from_config: LangChain only: act for the ``Principal`` in
            ``config["configurable"]["principal"]``.
        collection: Qdrant only: the collection searched.
        embed: Qdrant only: turns the query into the collection's vector.
    """

    k: int | None = None
    data: str | None = None
    requires_authentication: bool = False
    authorizer: Authorizer | None = None
    labels: Sequence[str] | None = None
    source: str | None = None
    max_rounds: int = 4
    fetch_multiplier: int = 4
    max_fetch: int = 2_000
    cache_size: int = 0
    principal_from_config: bool = False
    collection: str | None = None
    embed: Callable[[str], Sequence[float]] | None = None

    def __post_init__(self) -> None:
        if self.k is not None:
            _positive("k", self.k)
        for name in ("max_rounds", "fetch_multiplier", "max_fetch"):
            _positive(name, getattr(self, name))
        if self.k is not None and self.max_fetch < self.k:
            raise PolicyError(f"max_fetch={self.max_fetch} is below k={self.k}")
        size = self.cache_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise PolicyError("cache_size= must be 0 (off) or a positive integer")
        _flag("requires_authentication", self.requires_authentication)
        _flag("principal_from_config", self.principal_from_config)
        for name in ("data", "source", "collection"):
            _optional_text(name, getattr(self, name))
        if self.labels is not None:
            object.__setattr__(self, "labels", _names("labels", self.labels))
        if self.authorizer is not None and not isinstance(self.authorizer, Authorizer):
            raise PolicyError("authorizer= must have an authorize_many method")
        if self.embed is not None and not callable(self.embed):
            raise PolicyError("embed= must be a callable from text to a vector")

    def only_for(self, framework: str, *fields: str) -> None:
        """Refuse options another framework's retriever does not take.

        Raises:
            PolicyError: one of ``fields`` was given.
        """
        for name in fields:
            if getattr(self, name) not in (None, False):
                raise PolicyError(
                    f"{name}= is not supported for a {framework} retriever"
                    + (
                        "; use acting_as(principal) instead"
                        if name == "principal_from_config"
                        else ""
                    )
                )


class _Fields(TypedDict):
    """A declaration's fields as keywords of the core functions."""

    scopes: Iterable[str]
    any_scopes: Iterable[str]
    capabilities: Iterable[str]
    data: str | None
    exposure: str | None
    untrusted_output: bool | None
    free_text: Iterable[str] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDeclaration:
    """What code declares about a tool (or an MCP resource or prompt), checked once.

    The declaration is joined with the policy's entry for the tool; code
    cannot weaken the policy (see :func:`aiinvariants.tools.check_tool`).
    Collections given are kept as tuples (a bare string is refused).

    Attributes:
        name: the tool's name in the policy; None: the code's own name.
        scopes: scopes that are all needed.
        any_scopes: scopes of which one is needed as well.
        capabilities: what the tool can do (``sends_external``...).
        data: the highest classification it returns; None: undeclared
            (the highest label).
        exposure: ``"public"`` or ``"internal"``; None: the policy's.
        untrusted_output: its output may carry injected instructions;
            None: as the policy says, else True.
        free_text: the parameters whose values are the model's prose (I12
            provenance); None: undeclared. Joined with the policy's, a
            parameter is prose only where both say so.
    """

    name: str | None = None
    scopes: Iterable[str] = ()
    any_scopes: Iterable[str] = ()
    capabilities: Iterable[str] = ()
    data: str | None = None
    exposure: str | None = None
    untrusted_output: bool | None = None
    free_text: Iterable[str] | None = None

    def __post_init__(self) -> None:
        for field in ("scopes", "any_scopes", "capabilities"):
            object.__setattr__(self, field, _names(field, getattr(self, field)))
        if self.name is not None and (
            not isinstance(self.name, str) or not self.name or len(self.name) > 128
        ):
            raise PolicyError("name= must be a non-empty string of at most 128 chars")
        _optional_text("data", self.data)
        if self.exposure is not None and self.exposure not in _EXPOSURES:
            raise PolicyError("exposure= must be 'public' or 'internal'")
        if self.untrusted_output is not None:
            _flag("untrusted_output", self.untrusted_output)
        if self.free_text is not None:
            object.__setattr__(self, "free_text", _names("free_text", self.free_text))

    def _fields(self) -> _Fields:
        return {
            "scopes": self.scopes,
            "any_scopes": self.any_scopes,
            "capabilities": self.capabilities,
            "data": self.data,
            "exposure": self.exposure,
            "untrusted_output": self.untrusted_output,
            "free_text": self.free_text,
        }

    @property
    def empty(self) -> bool:
        """True when nothing but the defaults was declared."""
        return self == ToolDeclaration()

    def named(self, name: str) -> ToolDeclaration:
        """This declaration under ``name`` when it names no tool itself."""
        if self.name is not None:
            return self
        return dataclasses.replace(self, name=name)

    def spec(self, name: str | None = None) -> ToolSpec:
        """The validated :class:`~aiinvariants.tools.ToolSpec` (no registration)."""
        from aiinvariants.tools import tool_spec

        return tool_spec(name or self.name or "tool", **self._fields())

    def register(self, guard: Guard, fn: Any) -> ToolSpec:
        """Register ``fn`` under this declaration: the one registration path (I3).

        Raises:
            PolicyError: ``fn`` is not callable, an unknown data label, or a
                capability the policy forbids.
        """
        from aiinvariants.tools import register_tool

        return register_tool(guard, fn, name=self.name, **self._fields())

    def decorator(self, guard: Guard) -> Callable[[Callable[P, R]], GuardedTool[P, R]]:
        """The core decorator of a plain function under this declaration."""
        from aiinvariants.tools import guarded_tool

        return guarded_tool(guard, name=self.name, **self._fields())

    def resource_spec(self, key: str) -> ResourceSpec:
        """The declaration of an MCP resource or prompt (no capabilities)."""
        from aiinvariants.resources import resource_spec

        if self.capabilities:
            raise PolicyError("a resource or prompt declares no capabilities")
        return resource_spec(
            key,
            scopes=self.scopes,
            any_scopes=self.any_scopes,
            data=self.data,
            exposure=self.exposure,
            untrusted_output=self.untrusted_output,
        )
