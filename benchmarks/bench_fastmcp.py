"""Overhead of a guarded FastMCP server (issue #14): the same tool, the same
FastMCP in-memory client, with and without ``guard_fastmcp``."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from typing import Any

from aiinvariants import Guard, Policy, Principal, acting_as

from ._harness import Result, print_table

POLICY = Policy.from_dict(
    {
        "clearance": {"scopes": {"tickets:read": "internal"}},
        "tools": {"read_ticket": {"scopes": ["tickets:read"], "data": "internal"}},
        "resources": {"kb://{name}": {"scopes": ["tickets:read"], "data": "internal"}},
    }
)
ALICE = Principal(
    subject="alice", authenticated=True, scopes=frozenset({"tickets:read"})
)


def _server(*, guarded: bool) -> Any:
    from fastmcp import FastMCP

    from aiinvariants.integrations.fastmcp import guard_fastmcp

    server: Any = FastMCP("bench")
    if guarded:
        guard_fastmcp(Guard(POLICY), server)

    @server.tool
    def read_ticket(ticket_id: str) -> str:
        return f"ticket {ticket_id}: the printer on floor 3 is out of toner"

    @server.resource("kb://{name}")
    def kb(name: str) -> str:
        return f"article {name}: restart the VPN client"

    return server


async def _time(
    clients: dict[str, Any], call: str, *, number: int, repeat: int
) -> list[Result]:
    async def once(client: Any) -> None:
        if call == "tool":
            await client.call_tool("read_ticket", {"ticket_id": "T-1"})
        else:
            await client.read_resource("kb://vpn")

    names = list(clients)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for client in clients.values():  # warm up
        for _ in range(20):
            await once(client)
    for round_ in range(repeat):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            start = time.perf_counter_ns()
            for _ in range(number):
                await once(clients[name])
            samples[name].append((time.perf_counter_ns() - start) / number)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    base = medians[names[0]]
    return [Result(name, medians[name], medians[name] / base) for name in names]


def run() -> None:
    try:
        from fastmcp import Client
    except ImportError:
        print("\nguarded FastMCP: skipped (the fastmcp extra is not installed)")
        return
    logging.disable(logging.WARNING)

    async def go(call: str) -> list[Result]:
        async with (
            acting_as(ALICE),
            Client(_server(guarded=False)) as plain,
            Client(_server(guarded=True)) as guarded,
        ):
            return await _time(
                {
                    f"FastMCP {call} (unguarded)": plain,
                    f"FastMCP {call} (guard_fastmcp)": guarded,
                },
                call,
                number=100,
                repeat=7,
            )

    for call in ("tool", "resource"):
        print_table(
            f"FastMCP {call} call, in-memory client (same server code)",
            asyncio.run(go(call)),
        )


if __name__ == "__main__":
    run()
