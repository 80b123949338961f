"""The official MCP SDK over streamable HTTP on loopback, with guarded tools."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mcp_support import Served, mcp_session, running_http_server
from oauth_support import OAuthServer, running_oauth_server


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture(scope="module")
def served(oauth: OAuthServer) -> Iterator[Served]:
    with running_http_server(oauth) as served:
        yield served


def token(oauth: OAuthServer, served: Served, subject: str, scopes: str = "") -> str:
    return oauth.mint_user(subject, audience=served.resource, scopes=scopes)


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


def test_scoped_tool_runs_for_the_verified_user(
    oauth: OAuthServer, served: Served
) -> None:
    async def go() -> str:
        async with mcp_session(
            served.url, token(oauth, served, "alice", "tickets:read")
        ) as session:
            result = await session.call_tool("read_ticket", {"ticket_id": "T-1"})
            assert not result.is_error
            return text(result)

    assert run(go()) == "ticket T-1 for alice"


def test_public_tool_and_tools_list_filtering(
    oauth: OAuthServer, served: Served
) -> None:
    async def go(scopes: str) -> list[str]:
        async with mcp_session(served.url, token(oauth, served, "bob", scopes)) as s:
            assert text(await s.call_tool("search_kb", {"query": "vpn"})) == "kb:vpn"
            listed = await s.list_tools()
            return sorted(t.name for t in listed.tools)

    assert run(go("")) == ["search_kb", "whoami"]
    assert run(go("tickets:read")) == ["read_ticket", "search_kb", "whoami"]


def test_forbidden_tool_was_never_registered(
    oauth: OAuthServer, served: Served
) -> None:
    async def go() -> Any:
        async with mcp_session(
            served.url, token(oauth, served, "root", "tickets:read")
        ) as s:
            return await s.call_tool("open_floodgate", {"gate": 1})

    result = run(go())
    assert result.is_error
    assert any(
        e.reason == "capability_forbidden" and e.resource == "tool.open_floodgate"
        for e in served.memory.events
    )


def test_scope_shortfall_is_http_403_with_scope_challenge(
    oauth: OAuthServer, served: Served
) -> None:
    user = token(oauth, served, "carol", "kb:read")
    headers = {
        "Authorization": f"Bearer {user}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "read_ticket", "arguments": {"ticket_id": "T-9"}},
    }
    response = httpx.post(served.url, json=call, headers=headers, timeout=10)
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="tickets:read"' in challenge
    port = served.url.split(":")[2].split("/")[0]
    assert (
        f'resource_metadata="http://127.0.0.1:{port}'
        '/.well-known/oauth-protected-resource/mcp"' in challenge
    )
    assert user not in response.text


def test_scope_shortfall_via_sdk_client_is_refused(
    oauth: OAuthServer, served: Served
) -> None:
    from mcp.shared.exceptions import MCPError

    async def go() -> None:
        async with mcp_session(served.url, token(oauth, served, "dave")) as s:
            await s.call_tool("read_ticket", {"ticket_id": "T-1"})

    with pytest.raises(BaseException) as info:  # noqa: PT011 - an ExceptionGroup
        run(go())
    # The SDK raises MCPError inside its task groups' ExceptionGroups.
    assert MCPError.__name__ in repr(info.value)
    denial = [e for e in served.memory.events if e.subject == "dave"][-1]
    assert (denial.reason, denial.details["http"]) == ("scope_missing", 403)


def test_protected_resource_metadata_is_served(served: Served) -> None:
    host = served.url.rsplit("/mcp", 1)[0]
    doc = httpx.get(f"{host}/.well-known/oauth-protected-resource/mcp", timeout=5)
    assert doc.status_code == 200
    body = doc.json()
    assert body["resource"].rstrip("/") == served.resource


def test_no_token_is_401(served: Served) -> None:
    response = httpx.post(
        served.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
        timeout=5,
    )
    assert response.status_code == 401
    assert "resource_metadata=" in response.headers["www-authenticate"]


def test_client_session_checks_policy_before_calling(
    oauth: OAuthServer, served: Served
) -> None:
    from aiinvariants import Guard, ScopeDenied, ToolForbidden, acting_as
    from aiinvariants.audit import MemorySink
    from aiinvariants.auth import JWTVerifier
    from aiinvariants.integrations.mcp import GuardedClientSession
    from mcp_support import POLICY

    memory = MemorySink()
    client_guard = Guard(POLICY, sinks=[memory])
    raw = token(oauth, served, "gina", "kb:read")
    who = JWTVerifier(
        issuer=oauth.issuer,
        audience=served.resource,
        algorithms=["RS256"],
        jwks=oauth.jwks(),
    ).verify(raw)

    async def go() -> list[str]:
        outcomes = []
        async with acting_as(who), mcp_session(served.url, raw) as session:
            guarded = GuardedClientSession(session, client_guard)
            result = await guarded.call_tool("search_kb", {"query": "x"})
            outcomes.append(text(result))
            for name in ("open_floodgate", "whoami", "read_ticket"):
                try:
                    await guarded.call_tool(name, {"ticket_id": "T", "gate": 1})
                except (ToolForbidden, ScopeDenied) as exc:
                    outcomes.append(f"{name}:{exc.code}")
        return outcomes

    assert run(go()) == [
        "kb:x",
        "open_floodgate:capability_forbidden",
        "whoami:tool_unknown",
        "read_ticket:scope_missing",
    ]
    assert [e.reason for e in memory.events if e.decision == "deny"] == [
        "capability_forbidden",
        "tool_unknown",
        "scope_missing",
    ]
