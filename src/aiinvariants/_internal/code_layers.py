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

__all__ = ["UNFOLLOWED", "call_caps", "layers", "remember_caps", "sticky_caps"]


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
        #: Bumped whenever capabilities are remembered.
        self.generation = 0

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
            self.generation += 1


# Capabilities stick to the code, whatever name or wrapper it is reached by.
_CALLABLE_CAPS: Final = _IdentityCaps()
_MAX_LAYERS: Final = 64
_PARTIALMETHOD_LINKS: Final = ("_partialmethod", "__partialmethod__")
_PARTIALS: Final = (functools.partial, functools.partialmethod)
_DESCRIPTORS: Final = (classmethod, staticmethod)
_NOT_INSTANCES: Final = (type, types.BuiltinFunctionType, types.CodeType)
_FAST_WRAPPERS: Final = (types.FunctionType, functools.partial)
_C_SLOTS: Final = (types.GetSetDescriptorType, types.MemberDescriptorType)
_NO_WRAPPED: Final = (types.MethodType, types.CodeType, type)
_MAX_REFERENCED: Final = 512
_MAX_NAMES: Final = 512
_MAX_HOPS: Final = 3
_HEAPTYPE: Final = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement
_CLASS_ENTRIES: Final = ("__init__", "__new__", "__call__")
#: A capability of a callable whose layers could not all be followed: a tool
#: carrying it is refused wherever the policy forbids any capability.
UNFOLLOWED: Final = "unfollowed_code"


def layers(
    fn: Any, *, remembering: bool = False, references: bool = False
) -> list[Any]:
    """Every layer of code ``fn`` runs, outermost first (bounded).

    Follows ``__wrapped__`` chains, ``functools.partial``/``partialmethod``,
    bound methods (their function, and for a lookup the object they are
    bound to), ``classmethod``/``staticmethod``, callable instances (their
    class and its ``__call__``), classes (their bases and a metaclass's
    ``__call__``) and the code object of a plain function, so a forbidden
    capability is found under a new partial, a new bound method, a new
    instance, a subclass, a copy of the function made from its code, or any
    wrapper chain of those.

    With ``remembering``, only layers that belong to this code alone are
    returned: not the object a method is bound to, not a class's bases, and
    not the code of a wrapper or closure (a decorator's inner function shares
    one code object with every function it decorates).

    With ``references`` (at registration), the code a function refers to is
    followed too: callables in its closure cells and the globals its code
    (nested functions included) names, so a lambda or a wrapper without
    ``__wrapped__`` that calls forbidden code is found. That part is best
    effort and bounded; the structural walk above is not: a chain too deep
    to follow ends with :data:`UNFOLLOWED`, which the caller refuses.
    """
    out: list[Any] = []
    seen: set[int] = set()
    todo = [fn]
    refs: list[Any] = []
    hops = 0
    bound = _MAX_REFERENCED if references else _MAX_LAYERS
    while len(out) < bound:
        if not todo:
            # The next ring of referenced code, a bounded number of hops
            # away: a lambda calling a wrapper calling the function is two.
            if not refs or hops >= _MAX_HOPS:
                break
            todo, refs, hops = refs, [], hops + 1
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
            if references and not remembering:
                refs += _referenced(layer)
            continue
        if kind is types.CodeType:
            continue
        if isinstance(layer, type):
            if not remembering:
                todo += _class_links(layer, references=references)
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
            # A callable instance: its code is its class's __call__. A class
            # whose __call__ is C code is shared by every such wrapper
            # (wrapt's): it holds no remembered capability, or all of them
            # would inherit it.
            call = inspect.getattr_static(kind, "__call__", None)
            if not remembering or isinstance(call, types.FunctionType):
                todo += [kind, call]
    if not references and any(
        id(layer) not in seen for layer in todo if layer is not None
    ):
        out.append(UNFOLLOWED)  # structure left unfollowed: fail closed
    return out


def _class_links(cls: type, *, references: bool) -> list[Any]:
    # A subclass runs its bases' code; a metaclass's __call__ runs when the
    # class is called. Static (C) classes hold no remembered capability.
    links: list[Any] = [base for base in cls.__mro__[1:] if _is_heap_type(base)]
    meta = type(cls)
    if _is_heap_type(meta):
        links += [meta, inspect.getattr_static(meta, "__call__", None)]
    if references:
        links += [cls.__dict__.get(name) for name in _CLASS_ENTRIES]
    return links


def _is_heap_type(cls: type) -> bool:
    return bool(cls.__flags__ & _HEAPTYPE)


def _referenced(fn: types.FunctionType) -> list[Any]:
    """Callables ``fn`` refers to: closure cells and the globals it names."""
    found: list[Any] = []
    for cell in fn.__closure__ or ():
        with contextlib.suppress(ValueError):  # an empty cell
            found.append(cell.cell_contents)
    names: set[str] = set()
    codes = [fn.__code__]
    while codes and len(names) < _MAX_NAMES:
        code = codes.pop()
        names.update(code.co_names)
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    scope = fn.__globals__
    for name in sorted(names):
        value = scope.get(name)
        if isinstance(value, types.ModuleType):
            # ``module.attr(...)``: the attribute names are in co_names too.
            found += [value.__dict__.get(attr) for attr in sorted(names)]
        else:
            found.append(value)
    return [
        item
        for item in found
        if callable(item) and not isinstance(item, types.BuiltinFunctionType)
    ]


def _wrapped_of(layer: Any) -> Any:
    # Read ``__wrapped__`` without running code: from the instance dict of a
    # function or partial (the fast, common case), else getattr_static, which
    # never runs a hostile __getattr__ or property.
    # type(), not isinstance(): a proxy (wrapt) claims its target's class.
    kind = type(layer)
    if issubclass(kind, _FAST_WRAPPERS):
        return layer.__dict__.get("__wrapped__")
    if issubclass(kind, _NO_WRAPPED):
        return None  # followed through __func__ / not a wrapper
    try:
        wrapped = inspect.getattr_static(layer, "__wrapped__", None)
        if isinstance(wrapped, _C_SLOTS):
            # A C wrapper's slot (wrapt's FunctionWrapper, BoundFunctionWrapper):
            # reading it runs no Python code; the descriptor is no layer.
            wrapped = wrapped.__get__(layer, type(layer))
    except Exception:
        return None
    return None if isinstance(wrapped, property) else wrapped


def sticky_caps(fn: Any, *, references: bool = False) -> frozenset[str]:
    """Every capability recorded on any layer of ``fn``.

    :data:`UNFOLLOWED` is among them when ``fn`` has more layers than can be
    followed. ``references`` also follows the code ``fn`` refers to (see
    :func:`layers`): at registration, not on every call.
    """
    if type(fn) is types.FunctionType and not fn.__dict__ and not references:
        # The common case, on every call: a plain function (no __wrapped__,
        # no partialmethod link) has two layers, itself and its code.
        return _CALLABLE_CAPS.get(fn) | _CALLABLE_CAPS.get(fn.__code__)
    caps: frozenset[str] = frozenset()
    for layer in layers(fn, references=references):
        if layer is UNFOLLOWED:
            caps |= {UNFOLLOWED}
        else:
            caps |= _CALLABLE_CAPS.get(layer)
    return caps


_REFERENCED: Final[dict[int, tuple[weakref.ref[Any], int, frozenset[str]]]] = {}
_REFERENCED_SIZE: Final = 4096


def call_caps(fn: Any) -> frozenset[str]:
    """The capabilities a call of ``fn`` is decided on.

    Every layer of ``fn`` now (:func:`sticky_caps`), and the capabilities of
    the code it refers to, followed again whenever capabilities were
    remembered since (a lambda registered before the function it calls was
    forbidden), else read from a bounded cache: one integer comparison on
    the common path.
    """
    caps = sticky_caps(fn)
    key = id(fn)
    hit = _REFERENCED.get(key)
    generation = _CALLABLE_CAPS.generation
    if hit is not None and hit[0]() is fn and hit[1] == generation:
        return caps | hit[2]
    referenced = sticky_caps(fn, references=True)
    try:
        ref = weakref.ref(fn)
    except TypeError:
        return caps | referenced
    if len(_REFERENCED) >= _REFERENCED_SIZE:
        _REFERENCED.clear()
    _REFERENCED[key] = (ref, generation, referenced)
    return caps | referenced


def remember_caps(fn: Any, caps: frozenset[str]) -> None:
    """Record ``caps`` on every layer that belongs to ``fn``'s code alone."""
    if not caps:
        return
    for layer in layers(fn, remembering=True):
        if isinstance(layer, types.MethodType) or layer is UNFOLLOWED:
            continue  # a new bound method each time: its function is kept
        with contextlib.suppress(TypeError):  # not weak-referenceable
            _CALLABLE_CAPS.add(layer, caps)
