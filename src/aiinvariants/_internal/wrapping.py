"""Running a check before a callable, whatever kind of callable it is.

Decorators that enforce an invariant (scopes, authentication, use cases…)
share this: the check runs right before the body would, for sync and async
functions, generators and async generators, and the wrapper keeps the
signature, name and docstring of the wrapped callable.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from aiinvariants._errors import PolicyError

__all__ = ["resource_name", "wrap_checked"]


def resource_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of ``fn``: the default resource in audit events."""
    module = getattr(fn, "__module__", None) or "<unknown>"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return f"{module}.{name}" if name else module


def wrap_checked(
    fn: Callable[..., Any],
    check: Callable[..., object],
    *,
    with_arguments: bool = False,
    **attributes: object,
) -> Any:
    """Return a wrapper of ``fn`` that calls ``check()`` before the body runs.

    ``check`` raises to deny; with ``with_arguments=True`` it is called as
    ``check(args, kwargs)`` with the call's arguments. Generators are checked
    when iteration starts (when their body would start), and values sent or
    exceptions thrown into the wrapper reach the wrapped generator.
    ``attributes`` are set on the wrapper (``rule``, ``resource``…) so tests
    can inspect what is enforced.
    """
    if not callable(fn):
        raise PolicyError(f"cannot guard {type(fn).__name__}: it is not callable")
    if with_arguments:
        checked_with = check

        def check_call(*args: Any, **kwargs: Any) -> None:
            checked_with(args, kwargs)

    else:
        plain = check

        def check_call(*args: Any, **kwargs: Any) -> None:
            plain()

    wrapper: Any
    if inspect.isasyncgenfunction(fn):

        async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            check_call(*args, **kwargs)
            agen = fn(*args, **kwargs)
            # Delegate as ``yield from`` would: values sent and exceptions
            # thrown into the wrapper reach the wrapped generator.
            try:
                item = await agen.__anext__()
            except StopAsyncIteration:
                return
            while True:
                try:
                    sent = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    try:
                        item = await agen.athrow(exc)
                    except StopAsyncIteration:
                        return
                else:
                    try:
                        item = await agen.asend(sent)
                    except StopAsyncIteration:
                        return

        wrapper = agen_wrapper
    elif inspect.iscoroutinefunction(fn):

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            check_call(*args, **kwargs)
            return await fn(*args, **kwargs)

        wrapper = async_wrapper
    elif inspect.isgeneratorfunction(fn):

        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            check_call(*args, **kwargs)
            return (yield from fn(*args, **kwargs))

        wrapper = gen_wrapper
    else:

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            check_call(*args, **kwargs)
            return fn(*args, **kwargs)

        wrapper = sync_wrapper
    functools.update_wrapper(wrapper, fn)
    for name, value in attributes.items():
        setattr(wrapper, name, value)
    return wrapper
