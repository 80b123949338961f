"""A guarded model for OpenAI Agents SDK tests, against the loopback server.

The server (``llm_support``) answers a ``CALL:`` message with the scripted
tool calls (:func:`script`) and, once the results are in, ``DONE:<results>``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from agents import OpenAIChatCompletionsModel
from openai import AsyncOpenAI

from aiinvariants import Guard
from llm_support import LLMServer


def guarded_chat_model(
    guard: Guard, server: LLMServer
) -> tuple[Any, OpenAIChatCompletionsModel]:
    """(the guarded client, a chat-completions model on it)."""
    # No kept-alive connection: each test drives several event loops.
    http = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
    client = guard.llm(
        AsyncOpenAI(
            api_key="k", base_url=server.url + "/v1", max_retries=0, http_client=http
        )
    )
    return client, OpenAIChatCompletionsModel(model="gpt-4.1", openai_client=client)


def call(name: str, arguments: Any) -> dict[str, str]:
    """One scripted tool call."""
    return {"name": name, "arguments": json.dumps(arguments)}


def script(*rounds: list[dict[str, str]]) -> str:
    """A user message scripting the model's tool calls, round by round."""
    return "CALL:" + json.dumps({"rounds": list(rounds)})
