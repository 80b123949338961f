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

from aiinvariants.errors import PolicyError
from aiinvariants.filters.classifiers import Classifier

if TYPE_CHECKING:
    from aiinvariants.guard import Guard

__all__ = ["guard_chat_model"]


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
    classifiers = list(classifiers)
    module = type(chat).__module__.split(".", 1)[0]
    if module == "langchain_openai":
        from aiinvariants.integrations.openai import guard_openai

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
    if module == "langchain_anthropic":
        from aiinvariants.integrations.anthropic import guard_anthropic

        new = chat.model_copy()
        for name in ("_client", "_async_client"):
            new.__dict__[name] = guard_anthropic(
                guard,
                getattr(chat, name),
                system_prompt=system_prompt,
                classifiers=classifiers,
            )
        return new
    raise PolicyError(
        f"guard.llm cannot guard the chat model {type(chat).__name__}; pass "
        "ChatOpenAI or ChatAnthropic (or guard the SDK client it uses)"
    )
