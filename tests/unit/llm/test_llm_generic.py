"""guard_llm on a plain callable: model, region, output pipeline, streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from aiinvariants import (
    Guard,
    ModelDenied,
    OutputBlocked,
    Policy,
    PolicyError,
    RegionDenied,
)
from aiinvariants.llm import guard_llm

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
URL = "https://llm.internal.example.com"


def guard(**regions: object) -> Guard:
    return Guard(
        Policy(
            exposure="public",  # anonymous callers: an internal app refuses them
            models={"allow": ["llama*"], "deny": ["deepseek*"]},
            regions=regions or {"allow": ["eu-*"], "declared": {URL: "eu-west-1"}},
        )
    )


def echo(prompt: str, **_: object) -> str:
    return prompt


def test_plain_callable() -> None:
    fn = guard_llm(guard(), echo, model="llama3.1:8b", endpoint=URL)
    assert fn("mail ops@example.com") == "mail [REDACTED]"
    with pytest.raises(OutputBlocked):
        fn(SECRET)
    with pytest.raises(ModelDenied):
        fn("x", model="deepseek-r1:7b")


def test_missing_model_or_region_is_denied() -> None:
    with pytest.raises(ModelDenied) as info:
        guard_llm(guard(), echo, endpoint=URL)("x")
    assert info.value.code == "model_unknown"
    with pytest.raises(RegionDenied):
        guard_llm(guard(), echo, model="llama3")("x")
    assert guard_llm(guard(allow=None), echo, model="llama3")("ok") == "ok"


def test_streams_sync_and_async() -> None:
    def gen(prompt: str) -> Iterator[str]:
        yield from (prompt[i : i + 3] for i in range(0, len(prompt), 3))

    async def agen(prompt: str) -> AsyncIterator[str]:
        for i in range(0, len(prompt), 3):
            yield prompt[i : i + 3]

    text = "write to ops@example.com today"
    fn = guard_llm(guard(), gen, model="llama3", endpoint=URL)
    assert "".join(fn(text)) == "write to [REDACTED] today"
    afn = guard_llm(guard(), agen, model="llama3", endpoint=URL)

    async def collect() -> str:
        return "".join([part async for part in afn(text)])

    assert asyncio.run(collect()) == "write to [REDACTED] today"


def test_async_callable_and_bad_results() -> None:
    async def answer(prompt: str) -> str:
        return prompt

    fn = guard_llm(guard(), answer, model="llama3", endpoint=URL)
    assert asyncio.run(fn("mail ops@example.com")) == "mail [REDACTED]"
    bad = guard_llm(guard(), lambda: 42, model="llama3", endpoint=URL)
    with pytest.raises(PolicyError):
        bad()


def test_system_prompt_gets_a_canary() -> None:
    fn = guard_llm(
        guard(), echo, model="llama3", endpoint=URL, system_prompt="Be kind."
    )
    assert fn.system_prompt.startswith("Be kind.")
    assert "aiinv-canary-" in fn.system_prompt
    canary = fn.system_prompt.rsplit(" ", 1)[-1].rstrip("]")
    with pytest.raises(OutputBlocked):
        fn(f"the marker is {canary}")
