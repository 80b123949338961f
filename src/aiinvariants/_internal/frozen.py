"""Immutable containers shared by the policy and the principal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn, TypeVar

__all__ = ["FrozenDict", "freeze"]

_K = TypeVar("_K")
_V = TypeVar("_V")


class FrozenDict(dict[_K, _V]):
    """A ``dict`` that refuses every mutation, and so can be hashed.

    A policy caches its hash and is shared by every enforcement point, and a
    principal's claims are read by every check: a mapping inside either that
    could be changed in place would let one piece of code weaken the checks
    for all others.
    A ``dict`` subclass (not a ``MappingProxyType``) so that pydantic
    serialises it and ``isinstance(value, dict)`` still holds.
    """

    __slots__ = ()

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("this mapping is read-only; build a new object instead")

    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[type[FrozenDict[_K, _V]], tuple[dict[_K, _V]]]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[_K, _V]:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> FrozenDict[_K, _V]:
        return self

    def __repr__(self) -> str:
        return dict.__repr__(self)


def freeze(value: object) -> object:
    """Deep-freeze JSON-like data: mappings become FrozenDicts, lists tuples."""
    if isinstance(value, Mapping):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value
