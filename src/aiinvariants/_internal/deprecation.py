"""Old names kept for one release: each use warns and names the new one.

A renamed keyword argument goes through :func:`renamed_keyword`; a renamed
module attribute through :func:`moved_attribute` (from the module's
``__getattr__``). The warning is a ``DeprecationWarning`` whose message says
what to write instead, pointing at the caller's line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiinvariants._errors import PolicyError

__all__ = ["allow_anonymous", "moved_attribute", "renamed_key", "renamed_keyword"]

T = TypeVar("T")

#: When the old names go.
REMOVED_IN = "the next minor release"


def renamed_keyword(
    where: str,
    old: str,
    old_value: T | None,
    new: str,
    new_value: T | None,
    *,
    stacklevel: int = 3,
) -> T | None:
    """The value of a keyword argument that was renamed ``old`` -> ``new``.

    Warns when ``old`` was given; refuses both at once (which one would win
    is a guess, and a guess about scopes or timeouts is a weakening).

    Raises:
        PolicyError: both ``old`` and ``new`` were given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise PolicyError(f"{where}: give {new}= only ({old}= is its old name)")
    warnings.warn(
        f"{where}: {old}= is deprecated (removed in {REMOVED_IN}); use {new}=",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return old_value


def moved_attribute(
    module: str, name: str, renamed: Mapping[str, tuple[str, Any]]
) -> Any:
    """A module ``__getattr__`` body: ``renamed[name]`` is ``(new name, value)``.

    Raises:
        AttributeError: ``name`` is not an old name of ``module``.
    """
    if name not in renamed:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new, value = renamed[name]
    warnings.warn(
        f"{module}.{name} is deprecated (removed in {REMOVED_IN}); use {new}",
        DeprecationWarning,
        stacklevel=3,
    )
    return value


def renamed_key(
    data: Any,
    old: str,
    new: str,
    *,
    where: str,
    convert: Callable[[Any], Any] = lambda value: value,
) -> Any:
    """A policy model's before-validator body: ``old`` is read as ``new``.

    ``convert`` maps the old value to the new unit (and raises
    ``ValueError`` for a value the old name never accepted).

    Raises:
        ValueError: both keys were given, or ``convert`` refused the value.
    """
    if not isinstance(data, Mapping) or old not in data:
        return data
    out = dict(data)
    value = out.pop(old)
    if new in out:
        raise ValueError(f"give {new} only ({old} is its old name)")
    if value is None:
        return out
    out[new] = convert(value)
    warnings.warn(
        f"{where}: {old} is deprecated (removed in {REMOVED_IN}); use {new}",
        DeprecationWarning,
        stacklevel=2,
    )
    return out


def allow_anonymous(where: str, allow: bool | None, accept: bool | None) -> bool:
    """``allow_anonymous=`` as a bool; ``accept_anonymous=`` is its old name.

    Only ``True`` lets anonymous callers in: a string (``"false"`` read
    from the environment) or any other value is refused, never read by its
    truth value.

    Raises:
        PolicyError: both names given, or a value that is not a bool.
    """
    value = renamed_keyword(
        where, "accept_anonymous", accept, "allow_anonymous", allow, stacklevel=4
    )
    if value is not None and not isinstance(value, bool):
        raise PolicyError(
            f"{where}: allow_anonymous= takes True or False, not {type(value).__name__}"
        )
    return value is True
