"""Over the wire: an MCP server (official SDK, streamable HTTP on loopback)
decides on the code a tool runs and caps what it returns.

- A tool registered under a harmless name as a ``functools.partial`` of a
  function that is forbidden *later* is refused at its next call, with the
  stable code in the tool error (I3).
- A tool declared ``data="public"`` whose code returns a confidential
  document is refused (``mislabelled_source``), for every caller (I1).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import pytest

from aiinvariants import PolicyError
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


def _call(oauth: OAuthServer, served: Served, name: str) -> Any:
    token = oauth.mint_user("alice", audience=served.resource, scopes="tickets:read")

    async def go() -> Any:
        async with mcp_session(served.url, token) as session:
            return await session.call_tool(name, {})

    return asyncio.run(asyncio.wait_for(go(), timeout=20))


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_partial_registered_before_its_code_was_forbidden_is_refused_at_call(
    oauth: OAuthServer, served: Served
) -> None:
    def vent() -> str:
        return "vented"

    served.mcp_guard.tool(served.server, name="check_pressure", data="public")(
        functools.partial(vent)
    )
    first = _call(oauth, served, "check_pressure")
    assert not first.is_error
    assert _text(first) == "vented"
    with pytest.raises(PolicyError):  # now the code is known to be forbidden
        served.mcp_guard.guard.tool(name="open_floodgate")(vent)
    second = _call(oauth, served, "check_pressure")
    assert second.is_error
    assert "capability_forbidden" in _text(second)
    assert "vented" not in _text(second)


def test_public_tool_returning_confidential_data_is_refused_over_mcp(
    oauth: OAuthServer, served: Served
) -> None:
    def faq() -> dict[str, str]:
        return {"classification": "confidential", "text": "salary bands"}

    served.mcp_guard.tool(served.server, name="faq", data="public")(faq)
    result = _call(oauth, served, "faq")
    assert result.is_error
    assert "mislabelled_source" in _text(result)
    assert "salary" not in _text(result)
