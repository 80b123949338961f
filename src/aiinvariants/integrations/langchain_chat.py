"""``guard.llm`` for LangChain chat models: ``ChatOpenAI``, ``ChatAnthropic``.

The chat model is copied and its SDK clients (sync and async) are replaced
by guarded ones (:func:`~aiinvariants.integrations.openai.guard_openai`,
:func:`~aiinvariants.integrations.anthropic.guard_anthropic`), so
``invoke``, ``stream``, ``batch``, ``with_structured_output`` and their async
forms all send through the wire check. The model given is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiinvariants._errors import PolicyError
from aiinvariants.filters.classifiers import Classifier

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = ["guard_chat_anthropic", "guard_chat_model", "guard_chat_openai"]


def guard_chat_model(
    guard: Guard,
    chat: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> Any:
    """A copy of a LangChain ``ChatOpenAI``/``ChatAnthropic`` on guarded clients.

    Raises:
        PolicyError: ``chat`` is another kind of chat model.
    """
    from aiinvariants.integrations._dispatch import route_of

    row = route_of("llm", chat)
    if row is None or not row.target.startswith(__name__ + ":"):
        raise PolicyError(
            f"guard.llm cannot guard the chat model {type(chat).__name__}; pass "
            "ChatOpenAI or ChatAnthropic (or guard the SDK client it uses)"
        )
    guarded: Any = row.load()(
        guard, chat, system_prompt=system_prompt, classifiers=classifiers
    )
    return guarded


def guard_chat_openai(
    guard: Guard,
    chat: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> Any:
    """A copy of a LangChain ``ChatOpenAI`` (or a subclass) on guarded clients."""
    from langchain_openai.chat_models.base import BaseChatOpenAI

    from aiinvariants.integrations.openai import guard_openai

    if not isinstance(chat, BaseChatOpenAI):
        raise PolicyError(f"not a LangChain ChatOpenAI: {type(chat).__name__}")
    classifiers = list(classifiers)
    new = chat.model_copy()
    for root, leaf in (
        ("root_client", "client"),
        ("root_async_client", "async_client"),
    ):
        raw = getattr(chat, root, None)
        if raw is None:
            continue
        guarded = guard_openai(
            guard, raw, system_prompt=system_prompt, classifiers=classifiers
        )
        new.__dict__[root] = guarded
        new.__dict__[leaf] = guarded.chat.completions
    return new


def guard_chat_anthropic(
    guard: Guard,
    chat: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> Any:
    """A copy of a LangChain ``ChatAnthropic`` (or a subclass) on guarded clients."""
    from langchain_anthropic import ChatAnthropic

    from aiinvariants.integrations.anthropic import guard_anthropic

    if not isinstance(chat, ChatAnthropic):
        raise PolicyError(f"not a LangChain ChatAnthropic: {type(chat).__name__}")
    classifiers = list(classifiers)
    new = chat.model_copy()
    for name in ("_client", "_async_client"):
        new.__dict__[name] = guard_anthropic(
            guard,
            getattr(chat, name),
            system_prompt=system_prompt,
            classifiers=classifiers,
        )
    return new
