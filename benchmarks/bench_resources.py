"""Cost of guarded MCP resources (issue #14): the decision, and a whole read.

Side by side in one run: the resource decision next to the tool decision it
shares its rules with, and ``resources/read`` through the SDK's in-process
client on the same server code, unguarded and behind ``MCPGuard.protect``.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from typing import Any

from aiinvariants import Guard, Policy, Principal
from aiinvariants.resources import check_resource
from aiinvariants.tools import check_tool

from ._harness import Result, compare, print_table

POLICY = Policy.from_dict(
    {
        "clearance": {"scopes": {"kb:read": "internal"}},
        "tools": {"read_kb": {"scopes": ["kb:read"], "data": "internal"}},
        "resources": {
            "kb://faq": {"scopes": ["kb:read"], "data": "internal"},
            "kb://articles/{id}": {"scopes": ["kb:read"], "data": "internal"},
            **{f"other{i}://x/{{id}}": {"data": "public"} for i in range(20)},
        },
    }
)
ALICE = Principal(subject="alice", authenticated=True, scopes=frozenset({"kb:read"}))


def _decision() -> None:
    guard = Guard(POLICY)
    results = compare(
        {
            "check_tool (scopes, data)": lambda: check_tool(
                guard, "read_kb", principal=ALICE
            ),
            "check_resource, exact key": lambda: check_resource(
                guard, "kb://faq", principal=ALICE
            ),
            "check_resource, template (22 keys)": lambda: check_resource(
                guard, "kb://articles/42", principal=ALICE
            ),
        },
        baseline="check_tool (scopes, data)",
        number=5_000,
        repeat=9,
    )
    print_table("resource decision next to the tool decision (allowed)", results)


def _server(*, guarded: bool) -> Any:
    from mcp.server.mcpserver import MCPServer

    from aiinvariants.integrations.mcp import MCPGuard

    server: MCPServer[Any] = MCPServer("bench")

    @server.resource("kb://articles/{id}")
    def article(id: str) -> str:
        return f"article {id}"

    if guarded:
        mcp_guard = MCPGuard(Guard(POLICY))
        mcp_guard.current_principal = lambda: ALICE  # type: ignore[method-assign]
        mcp_guard.protect(server)
    return server


async def _reads(clients: dict[str, Any], *, number: int, repeat: int) -> list[Result]:
    names = list(clients)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for client in clients.values():
        for _ in range(20):
            await client.read_resource("kb://articles/1")
    for round_ in range(repeat):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            start = time.perf_counter_ns()
            for _ in range(number):
                await clients[name].read_resource("kb://articles/1")
            samples[name].append((time.perf_counter_ns() - start) / number)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    base = medians[names[0]]
    return [Result(name, medians[name], medians[name] / base) for name in names]


def _over_mcp() -> None:
    try:
        from mcp import Client
    except ImportError:
        print("\nguarded MCP resource read: skipped (the mcp extra is not installed)")
        return
    logging.disable(logging.WARNING)

    async def run() -> list[Result]:
        async with (
            Client(_server(guarded=False)) as plain,
            Client(_server(guarded=True)) as guarded,
        ):
            return await _reads(
                {
                    "unguarded resources/read": plain,
                    "guarded resources/read (MCPGuard.protect)": guarded,
                },
                number=200,
                repeat=7,
            )

    print_table(
        "MCP resources/read through the SDK's in-process client (same server code)",
        asyncio.run(run()),
    )


def run() -> None:
    _decision()
    _over_mcp()


if __name__ == "__main__":
    run()
