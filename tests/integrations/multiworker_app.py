"""A guarded Starlette app for the multi-worker audit test (run by uvicorn).

Each worker process builds its Guard from the policy named by
``AIINVARIANTS_TEST_POLICY`` and closes it at shutdown (lifespan), so its
audit segment ends with a final checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aiinvariants import ANONYMOUS, Guard, InvariantViolation, Principal, load_policy

guard = Guard(load_policy(os.environ["AIINVARIANTS_TEST_POLICY"]))


async def decide(request: Request) -> JSONResponse:
    n = int(request.path_params["n"])
    who = Principal(subject=f"req-{n}", authenticated=True) if n % 3 else ANONYMOUS
    try:
        guard.check_scopes(None, resource=f"req-{n}", principal=who)
    except InvariantViolation as exc:
        return JSONResponse({"pid": os.getpid(), "decision": exc.code}, status_code=403)
    return JSONResponse({"pid": os.getpid(), "decision": "allow"})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"pid": os.getpid()})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    guard.close()


app = Starlette(
    routes=[Route("/decide/{n}", decide), Route("/health", health)],
    lifespan=lifespan,
)
