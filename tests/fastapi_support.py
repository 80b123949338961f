"""A FastAPI app guarded by FastAPIAuth, for the FastAPI integration and attack tests.

Every route records the principal its body (and its background tasks and
streamed body) saw in ``App.seen``, so a test can tell whether a request
reached the code and as whom.
"""

# No "from __future__ import annotations": FastAPI evaluates the routes'
# Annotated[..., Depends(auth.user)] hints, which name a local "auth".

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import uvicorn
from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    FastAPI,
    Form,
    Security,
    WebSocket,
)
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse

from aiinvariants import Guard, Policy, Principal, current_principal
from aiinvariants.audit import MemorySink
from aiinvariants.auth import protected_resource_metadata
from aiinvariants.integrations.fastapi import FastAPIAuth
from auth_support import AUDIENCE, ISSUER, verifier

AUTHORIZE = "https://login.example.test/authorize"
TOKEN_URL = "https://login.example.test/token"
META_URL = "https://api.example.test/.well-known/oauth-protected-resource"
DOCS = ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"]


def policy(exposure: str = "internal") -> Policy:
    return Policy(
        exposure=exposure,
        clearance={"groups": {"employees": "internal"}},
        tools={
            "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
            "open_floodgate": {"capabilities": ["life_safety"]},
        },
    )


@dataclass
class App:
    app: FastAPI
    auth: FastAPIAuth
    guard: Guard
    audit: MemorySink
    seen: list[tuple[str, str]] = field(default_factory=list)

    def saw(self, where: str) -> None:
        self.seen.append((where, current_principal().subject))


def build(
    *,
    exposure: str = "internal",
    gate: bool = True,
    install: bool = True,
    oauth2: bool = True,
    key_verifier: Any = None,
    **auth_options: Any,
) -> App:
    audit = MemorySink()
    guard = Guard(policy(exposure), sinks=[audit])
    options: dict[str, Any] = {
        "scopes": {"tickets:read": "Read tickets", "orders:read": "Read orders"},
        "metadata": protected_resource_metadata(
            resource=AUDIENCE,
            authorization_servers=[ISSUER],
            scopes_supported=["tickets:read", "orders:read"],
        ),
        "anonymous_paths": DOCS,
    }
    if oauth2:
        options.update(authorization_url=AUTHORIZE, token_url=TOKEN_URL)
    options.update(auth_options)
    auth = FastAPIAuth(guard, verifier=key_verifier or verifier(), **options)
    app = FastAPI(dependencies=[Depends(auth.gate)] if gate else [])
    state = App(app=app, auth=auth, guard=guard, audit=audit)

    @app.get("/tickets")
    async def tickets(
        user: Annotated[Principal, Security(auth.user, scopes=["tickets:read"])],
    ) -> dict[str, str]:
        state.saw("tickets")
        guard.check_tool("read_ticket", arguments={"ticket_id": "T-1"})
        return {"sub": current_principal().subject, "user": user.subject}

    @app.get("/tickets-sync")
    def tickets_sync(
        user: Annotated[Principal, Security(auth.user, scopes=["tickets:read"])],
    ) -> dict[str, str]:
        state.saw("tickets-sync")
        return {"sub": current_principal().subject}

    @app.get("/orders")
    async def orders(
        user: Annotated[Principal, Security(auth.user, scopes=["orders:read"])],
    ) -> dict[str, str]:
        state.saw("orders")
        return {"sub": current_principal().subject}

    @app.get("/me")
    async def me(user: Annotated[Principal, Depends(auth.user)]) -> dict[str, Any]:
        state.saw("me")
        return {"sub": user.subject, "scopes": sorted(user.scopes)}

    @app.get("/slow")
    async def slow(
        user: Annotated[Principal, Depends(auth.user)], delay: float = 0.05
    ) -> dict[str, str]:
        await asyncio.sleep(delay)
        return {"sub": current_principal().subject}

    @app.get("/health", dependencies=[Depends(auth.optional_user)])
    def health() -> dict[str, str]:
        state.saw("health")
        return {"sub": current_principal().subject}

    @app.get("/plain")
    def plain() -> dict[str, str]:
        state.saw("plain")
        return {"sub": current_principal().subject}

    @app.post("/form")
    def form(note: str = Form("")) -> dict[str, str]:
        state.saw("form")
        return {"sub": current_principal().subject}

    @app.get("/background")
    async def background(
        tasks: BackgroundTasks, user: Annotated[Principal, Depends(auth.user)]
    ) -> dict[str, str]:
        async def later_async() -> None:
            await asyncio.sleep(0)
            state.saw("background-async")

        def later_sync() -> None:
            state.saw("background-sync")

        tasks.add_task(later_async)
        tasks.add_task(later_sync)
        return {"sub": user.subject}

    @app.get("/stream")
    async def stream(
        user: Annotated[Principal, Depends(auth.user)],
    ) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0)
                yield (current_principal().subject + "\n").encode()

        return StreamingResponse(body())

    @app.get("/events", response_class=EventSourceResponse)
    async def events(
        user: Annotated[Principal, Depends(auth.user)],
    ) -> AsyncIterator[str]:
        for _ in range(2):
            await asyncio.sleep(0)
            yield current_principal().subject

    @app.get("/lines")
    def lines(user: Annotated[Principal, Depends(auth.user)]) -> Iterator[str]:
        # A sync generator: FastAPI iterates it in worker threads.
        for _ in range(2):
            yield current_principal().subject

    @app.get("/floodgate")
    async def floodgate(
        user: Annotated[Principal, Depends(auth.user)],
    ) -> dict[str, str]:
        state.saw("floodgate")
        guard.check_tool("open_floodgate", arguments={})
        return {"opened": "yes"}

    router = APIRouter(
        prefix="/admin", dependencies=[Security(auth.user, scopes=["admin"])]
    )

    @router.get("/orders")
    async def admin_orders(
        user: Annotated[Principal, Security(auth.user, scopes=["orders:read"])],
    ) -> dict[str, str]:
        state.saw("admin-orders")
        return {"sub": current_principal().subject}

    app.include_router(router)

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket, user: Annotated[Principal, Depends(auth.user)]
    ) -> None:
        await websocket.accept()
        await websocket.send_text(current_principal().subject)
        await websocket.close()

    if install:
        auth.install(app)
    return state


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", lifespan="on"
    )
    server = uvicorn.Server(config)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except SystemExit as exc:  # uvicorn exits when the lifespan fails
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
