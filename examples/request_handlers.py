"""Concurrent requests, each acting as its own user, with a thread pool.

Run it: ``python examples/request_handlers.py``. Three requests run at once on
one event loop; each does blocking work in a shared thread pool. The pool is a
``PrincipalExecutor``, so the blocking work is done for the right user: with a
plain ``ThreadPoolExecutor`` it would run as the anonymous principal.
"""

from __future__ import annotations

import asyncio

from aiinvariants import (
    ANONYMOUS,
    Guard,
    InvariantViolation,
    Principal,
    PrincipalExecutor,
    acting_as,
)
from aiinvariants.audit import MemorySink

audit = MemorySink()
guard = Guard(sinks=[audit])


@guard.enforce_user_scope("tickets:read", resource="tickets.list")
def list_tickets_blocking() -> list[str]:  # e.g. a synchronous database driver
    return ["T-1", "T-2"]


async def handle_request(pool: PrincipalExecutor, who: Principal) -> str:
    async with acting_as(who, correlation_id=f"req-{who.subject}"):
        try:
            tickets = await asyncio.wrap_future(pool.submit(list_tickets_blocking))
        except InvariantViolation as denied:
            return f"{who.subject}: denied ({denied.code})"
        return f"{who.subject}: {len(tickets)} tickets"


async def main() -> None:
    users = [
        Principal(subject="alice", authenticated=True, scopes="tickets:read"),
        Principal(subject="bob", authenticated=True, scopes="kb:read"),
        ANONYMOUS,
    ]
    with PrincipalExecutor(max_workers=2) as pool:
        for line in await asyncio.gather(*(handle_request(pool, u) for u in users)):
            print(line)
    for event in audit.events:
        print(f"  audit: {event.correlation_id:<14} {event.decision:<5} {event.reason}")


if __name__ == "__main__":
    asyncio.run(main())
