"""Following a callable to the code it runs, and capabilities that stick to it.

I3 must hold for the code itself, not for a name: a forbidden function stays
forbidden under a new ``functools.partial``, a new bound method, a new
instance of its class, a ``__wrapped__`` chain or a copy made from its code
object. :func:`remember_caps` records capabilities on every layer that
belongs to a callable's code alone; :func:`sticky_caps` collects them from
every layer of any callable, at registration and at every call.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import types
import weakref
from typing import Any, Final

__all__ = ["layers", "remember_caps", "sticky_caps"]


class _IdentityCaps:
    """Capabilities per object *identity*, forgotten when the object dies.

    Not a ``WeakKeyDictionary``: that compares keys with ``==``, and code
    objects compare equal by value (two identical functions elsewhere would
    share capabilities), while an instance with ``__eq__`` but no
    ``__hash__`` could not be a key at all.
    """

    def __init__(self) -> None:
        self._caps: dict[int, tuple[weakref.ref[Any], frozenset[str]]] = {}
        self._lock = threading.RLock()

    def get(self, obj: Any) -> frozenset[str]:
        entry = self._caps.get(id(obj))
        if entry is None or entry[0]() is not obj:
            return frozenset()
        return entry[1]

    def add(self, obj: Any, caps: frozenset[str]) -> None:
        key = id(obj)

        def forget(_: object, key: int = key) -> None:
            # No lock: the collector may run this inside add() itself.
            entry = self._caps.get(key)
            if entry is not None and entry[0]() is None:
                self._caps.pop(key, None)

        with self._lock:
            ref = weakref.ref(obj, forget)  # TypeError: not weak-referenceable
            self._caps[key] = (ref, self.get(obj) | caps)


# Capabilities stick to the code, whatever name or wrapper it is reached by.
_CALLABLE_CAPS: Final = _IdentityCaps()
_MAX_LAYERS: Final = 64
_PARTIALMETHOD_LINKS: Final = ("_partialmethod", "__partialmethod__")
_PARTIALS: Final = (functools.partial, functools.partialmethod)
_DESCRIPTORS: Final = (classmethod, staticmethod)
_NOT_INSTANCES: Final = (type, types.BuiltinFunctionType, types.CodeType)
_FAST_WRAPPERS: Final = (types.FunctionType, functools.partial)
_NO_WRAPPED: Final = (types.MethodType, types.CodeType, type)


def layers(fn: Any, *, remembering: bool = False) -> list[Any]:
    """Every layer of code ``fn`` runs, outermost first (bounded).

    Follows ``__wrapped__`` chains, ``functools.partial``/``partialmethod``,
    bound methods (their function, and for a lookup the object they are
    bound to), ``classmethod``/``staticmethod``, callable instances (their
    class and its ``__call__``) and the code object of a plain function, so
    a forbidden capability is found under a new partial, a new bound method,
    a new instance, a copy of the function made from its code, or any
    wrapper chain of those.

    With ``remembering``, only layers that belong to this code alone are
    returned: not the object a method is bound to, and not the code of a
    wrapper or closure (a decorator's inner function shares one code object
    with every function it decorates).
    """
    out: list[Any] = []
    seen: set[int] = set()
    todo = [fn]
    while todo and len(out) < _MAX_LAYERS:
        layer = todo.pop()
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        kind = type(layer)
        if kind is types.FunctionType:
            links = layer.__dict__
            wrapped = links.get("__wrapped__") if links else None
            if wrapped is not None:
                todo.append(wrapped)
            if not remembering or (wrapped is None and layer.__closure__ is None):
                todo.append(layer.__code__)
            if links:
                # A partialmethod reached through an instance is a new
                # function that only refers back to it by this attribute.
                todo += [links.get(a) for a in _PARTIALMETHOD_LINKS]
            continue
        if kind is types.CodeType:
            continue
        wrapped = _wrapped_of(layer)
        if wrapped is not None:
            todo.append(wrapped)
        if isinstance(layer, _PARTIALS):
            todo.append(layer.func)
        elif kind is types.MethodType:
            todo.append(layer.__func__)
            if not remembering:
                todo.append(layer.__self__)
        elif isinstance(layer, _DESCRIPTORS):
            todo.append(layer.__func__)
        elif callable(layer) and not isinstance(layer, _NOT_INSTANCES):
            # A callable instance: its code is its class's __call__.
            todo += [kind, inspect.getattr_static(kind, "__call__", None)]
    return out


def _wrapped_of(layer: Any) -> Any:
    # Read ``__wrapped__`` without running code: from the instance dict of a
    # function or partial (the fast, common case), else getattr_static, which
    # never runs a hostile __getattr__ or property.
    if isinstance(layer, _FAST_WRAPPERS):
        return layer.__dict__.get("__wrapped__")
    if isinstance(layer, _NO_WRAPPED):
        return None  # followed through __func__ / not a wrapper
    try:
        wrapped = inspect.getattr_static(layer, "__wrapped__", None)
    except Exception:
        return None
    return None if isinstance(wrapped, property) else wrapped


def sticky_caps(fn: Any) -> frozenset[str]:
    """Every capability recorded on any layer of ``fn``."""
    if type(fn) is types.FunctionType and not fn.__dict__:
        # The common case, on every call: a plain function (no __wrapped__,
        # no partialmethod link) has two layers, itself and its code.
        return _CALLABLE_CAPS.get(fn) | _CALLABLE_CAPS.get(fn.__code__)
    caps: frozenset[str] = frozenset()
    for layer in layers(fn):
        caps |= _CALLABLE_CAPS.get(layer)
    return caps


def remember_caps(fn: Any, caps: frozenset[str]) -> None:
    """Record ``caps`` on every layer that belongs to ``fn``'s code alone."""
    if not caps:
        return
    for layer in layers(fn, remembering=True):
        if isinstance(layer, types.MethodType):
            continue  # a new bound method each time: its function is kept
        with contextlib.suppress(TypeError):  # not weak-referenceable
            _CALLABLE_CAPS.add(layer, caps)
