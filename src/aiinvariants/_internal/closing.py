"""Small bases for context managers: close on exit, ``async with`` from ``with``."""

from __future__ import annotations

from types import TracebackType
from typing import Generic, TypeVar

from typing_extensions import Self

__all__ = ["AsyncFromSync", "Closing"]

_T = TypeVar("_T")


class Closing:
    """``with obj:`` returns ``obj`` and calls ``obj.close()`` on exit."""

    __slots__ = ()

    def close(self) -> None:
        """Release what the object holds. Subclasses override it."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncFromSync(Generic[_T]):
    """``async with obj`` does exactly what ``with obj`` does.

    For context managers whose work is synchronous (setting context
    variables) but which must also serve ``async with`` blocks.
    """

    __slots__ = ()

    def __enter__(self) -> _T:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> _T:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
