"""Overhead of guarded tools (issue #5): in process, and over MCP on loopback."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from aiinvariants import Guard, Policy, Principal, acting_as
from aiinvariants.tools import guarded_tool

from ._harness import Result, compare, print_table

_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mcp_tools.py"


def _in_process() -> None:
    policy = Policy.from_dict(
        {"tools": {"read_ticket": {"scopes": ["tickets:read"], "data": "internal"}}}
    )
    guard = Guard(policy)
    alice = Principal(
        subject="alice",
        authenticated=True,
        scopes=frozenset({"tickets:read"}),
        clearance="internal",
    )

    def read_ticket(ticket_id: int) -> int:
        return ticket_id

    guarded = guarded_tool(guard, name="read_ticket")(read_ticket)
    # Forbidden capabilities follow the code: the call-time check walks the
    # layers a wrapper runs (here partial -> functools.wraps -> function).
    layered = guarded_tool(guard, name="read_ticket")(
        functools.partial(functools.wraps(read_ticket)(lambda i: read_ticket(i)))
    )
    with acting_as(alice):
        results = compare(
            {
                "plain function": lambda: read_ticket(1),
                "guard.tool (scopes, data, capabilities)": lambda: guarded(1),
                "guard.tool over partial(wraps(function))": lambda: layered(1),
            },
            baseline="plain function",
            number=5_000,
            repeat=9,
        )
    print_table("guarded tool call, in process (allowed call)", results)


def _load_example() -> ModuleType | None:
    try:
        spec = importlib.util.spec_from_file_location("_mcp_example", _EXAMPLE)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        sys.modules["_mcp_example"] = module
        spec.loader.exec_module(module)
    except ImportError:
        return None
    return module


async def _time_calls(
    sessions: dict[str, Any], *, number: int, repeat: int
) -> list[Result]:
    names = list(sessions)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for session in sessions.values():  # warm up
        for _ in range(20):
            await session.call_tool("read_ticket", {"ticket_id": "T-1"})
    for round_ in range(repeat):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            session = sessions[name]
            start = time.perf_counter_ns()
            for _ in range(number):
                await session.call_tool("read_ticket", {"ticket_id": "T-1"})
            samples[name].append((time.perf_counter_ns() - start) / number)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    base = medians[names[0]]
    return [Result(name, medians[name], medians[name] / base) for name in names]


def _over_mcp() -> None:
    example = _load_example()
    if example is None:
        print("\nguarded MCP tool call: skipped (the mcp extra is not installed)")
        return
    logging.disable(logging.WARNING)

    async def run(plain_url: str, guarded_url: str) -> list[Result]:
        plain_token = example.mint("alice", audience=plain_url, scopes="tickets:read")
        guarded_token = example.mint(
            "alice", audience=guarded_url, scopes="tickets:read"
        )
        async with (
            example.session_as(plain_url, plain_token) as plain,
            example.session_as(guarded_url, guarded_token) as guarded,
        ):
            return await _time_calls(
                {
                    "unguarded MCP tool (SDK auth only)": plain,
                    "guarded MCP tool (MCPGuard)": guarded,
                },
                number=50,
                repeat=7,
            )

    with example.serve(guarded=False) as plain_url, example.serve() as guarded_url:
        results = asyncio.run(run(plain_url, guarded_url))
    print_table(
        "MCP tools/call over streamable HTTP on loopback (same server code)", results
    )


def run() -> None:
    _in_process()
    _over_mcp()


if __name__ == "__main__":
    run()
