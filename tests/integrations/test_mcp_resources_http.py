"""MCP resources and prompts over streamable HTTP (official SDK, real uvicorn).

Tokens of each scope set (none, partial, full, wrong audience) read,
list and get through the SDK's own client; the HTTP answers (401, 403,
metadata) are checked on the wire and their challenges parsed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from mcp_resource_support import SECRET_TEXT, ResourceServed, running_resource_server
from mcp_support import mcp_session
from oauth_support import OAuthServer, running_oauth_server

FULL = "hr:read kb:read notes:read incidents:write"
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture(scope="module")
def served(oauth: OAuthServer) -> Iterator[ResourceServed]:
    with running_resource_server(oauth) as served:
        yield served


def token(oauth: OAuthServer, served: ResourceServed, scopes: str = "") -> str:
    return oauth.mint_user("ann", audience=served.resource, scopes=scopes)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


# -- a strict RFC 7235 / RFC 6750 challenge parser -------------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})=({_TOKEN}|{_QUOTED})\s*(?:,|$)")


def parse_challenge(header: str) -> dict[str, str]:
    """The auth-params of one Bearer challenge; fails on anything else."""
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer"
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        found = _PARAM.match(rest, pos)
        assert found is not None, f"unparsable challenge at {pos}: {header!r}"
        name, value = found.group(1), found.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        assert name not in params, "a parameter appears twice"
        params[name] = value
        pos = found.end()
    return params


def raw(served: ResourceServed, body: Any, bearer: str | None) -> httpx.Response:
    headers = dict(ACCEPT)
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return httpx.post(served.url, json=body, headers=headers, timeout=10)


def read(uri: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "resources/read",
        "params": {"uri": uri},
    }


# -- listings and reads through the SDK client, per scope set ----------------------

LISTED = {
    "": (
        ["docs://public/readme", "mem://mislabelled"],
        ["docs://public/{name}"],
        ["summarise"],
    ),
    "kb:read": (
        ["docs://public/readme", "mem://mislabelled"],
        ["docs://public/{name}", "file:///kb/{+path}"],
        ["summarise", "triage"],
    ),
    FULL: (
        ["docs://public/readme", "docs://public/secret", "mem://mislabelled"],
        [
            "docs://hr/{name}",
            "docs://public/{name}",
            "file:///kb/{+path}",
            "notes://{user}",
            "vault://{area}/{name}",
        ],
        ["incident", "summarise", "triage"],
    ),
}


@pytest.mark.parametrize("scopes", list(LISTED))
def test_listings_show_only_what_the_token_may_read(
    oauth: OAuthServer, served: ResourceServed, scopes: str
) -> None:
    async def go() -> tuple[list[str], list[str], list[str]]:
        async with mcp_session(served.url, token(oauth, served, scopes)) as s:
            resources = (await s.list_resources()).resources
            templates = (await s.list_resource_templates()).resource_templates
            prompts = (await s.list_prompts()).prompts
            return (
                sorted(str(r.uri) for r in resources),
                sorted(t.uri_template for t in templates),
                sorted(p.name for p in prompts),
            )

    assert run(go()) == LISTED[scopes]


READS = [
    # uri, scopes that may read it (None: nobody)
    ("docs://public/readme", ""),
    ("docs://public/anything", ""),
    ("docs://public/secret", "hr:read"),
    ("docs://hr/pay", "hr:read"),
    ("file:///kb/a/b.md", "kb:read"),
    ("notes://ann", "notes:read"),
    ("vault://public/x", "hr:read"),  # the SDK's route needs it
    ("mem://undeclared", None),
    ("mem://disabled", None),
    ("mem://mislabelled", None),  # returns a confidential label: withheld
]


@pytest.mark.parametrize("scopes", ["", "kb:read", "notes:read", FULL])
def test_reads_per_scope_set(
    oauth: OAuthServer, served: ResourceServed, scopes: str
) -> None:
    held = set(scopes.split())

    async def go() -> dict[str, str]:
        outcome: dict[str, str] = {}
        async with mcp_session(served.url, token(oauth, served, scopes)) as s:
            for uri, _ in READS:
                try:
                    result = await s.read_resource(uri)
                    outcome[uri] = "".join(
                        getattr(c, "text", "") for c in result.contents
                    )
                except MCPError as exc:
                    outcome[uri] = f"denied:{(exc.data or {}).get('code', 'http')}"
        return outcome

    outcome = run(go())
    for uri, needs in READS:
        allowed = needs is not None and set(needs.split()) <= held
        assert outcome[uri].startswith("denied:") != allowed, (uri, outcome[uri])
        if not allowed:
            assert SECRET_TEXT not in outcome[uri]
    assert outcome["mem://undeclared"] == "denied:resource_unknown"
    assert outcome["mem://disabled"] == "denied:resource_disabled"
    assert outcome["mem://mislabelled"] == "denied:mislabelled_source"


@pytest.mark.parametrize("scopes", ["", "kb:read", FULL])
def test_prompts_per_scope_set(
    oauth: OAuthServer, served: ResourceServed, scopes: str
) -> None:
    async def go() -> dict[str, str]:
        outcome: dict[str, str] = {}
        async with mcp_session(served.url, token(oauth, served, scopes)) as s:
            for name, args in (
                ("summarise", {"text": "x"}),
                ("incident", {"system": "vpn"}),
                ("triage", {"ticket": "T-1"}),
                ("raw_prompt", {}),
            ):
                try:
                    got = await s.get_prompt(name, args)
                    outcome[name] = str(got.messages[0].content.text)  # type: ignore[union-attr]
                except MCPError as exc:
                    outcome[name] = f"denied:{(exc.data or {}).get('code', 'http')}"
        return outcome

    outcome = run(go())
    assert outcome["summarise"] == "Summarise: x"
    assert outcome["raw_prompt"] == "denied:prompt_unknown"
    assert outcome["incident"].startswith("denied:") != (scopes == FULL)
    if scopes == FULL:
        # The prompt body runs as the verified user.
        assert outcome["incident"] == "Incident report for vpn by ann"
    assert outcome["triage"].startswith("denied:") == (scopes == "")


# -- the wire: 401, 403 and the metadata ------------------------------------------


def test_scope_shortfall_on_a_resource_is_403_with_the_scopes_needed(
    oauth: OAuthServer, served: ResourceServed
) -> None:
    bearer = token(oauth, served, "kb:read")
    response = raw(served, read("docs://hr/pay"), bearer)
    assert response.status_code == 403
    challenge = parse_challenge(response.headers["www-authenticate"])
    assert challenge == {
        "error": "insufficient_scope",
        "scope": "hr:read",
        "resource_metadata": served.resource.replace(
            "/mcp", "/.well-known/oauth-protected-resource/mcp"
        ),
    }
    assert response.json()["scope"] == "hr:read"
    assert bearer not in response.text
    denial = [e for e in served.memory.events if e.details.get("http") == 403][-1]
    assert denial.resource == "resource.docs://hr/{name}"


@pytest.mark.parametrize(
    ("body", "scope"),
    [
        (read("docs://hr/pay"), "hr:read"),
        (read("vault://public/x"), "hr:read"),
        (
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "prompts/get",
                "params": {"name": "incident", "arguments": {"system": "a"}},
            },
            "incidents:write",
        ),
        # Nothing specific needed: every scope the server supports.
        (
            {"jsonrpc": "2.0", "id": 3, "method": "ping"},
            "hr:read incidents:write kb:read notes:read",
        ),
    ],
)
def test_no_token_is_401_with_scope(
    served: ResourceServed, body: dict[str, Any], scope: str
) -> None:
    response = raw(served, body, None)
    assert response.status_code == 401
    challenge = parse_challenge(response.headers["www-authenticate"])
    # RFC 6750 section 3.1: no error code when the request had no token.
    assert "error" not in challenge
    assert challenge["scope"] == scope
    assert challenge["resource_metadata"].endswith(
        "/.well-known/oauth-protected-resource/mcp"
    )


def test_wrong_audience_token_is_401_invalid_token_and_reads_nothing(
    oauth: OAuthServer, served: ResourceServed
) -> None:
    other = oauth.mint_user("mallory", audience="http://127.0.0.1:1/mcp", scopes=FULL)
    for uri in ("docs://public/readme", "docs://hr/pay"):
        response = raw(served, read(uri), other)
        assert response.status_code == 401
        challenge = parse_challenge(response.headers["www-authenticate"])
        assert challenge["error"] == "invalid_token"
        assert "scope" in challenge
        assert SECRET_TEXT not in response.text
        assert other not in response.text


def test_unusable_authorization_header_is_400(served: ResourceServed) -> None:
    response = httpx.post(
        served.url,
        json=read("docs://public/readme"),
        headers={**ACCEPT, "Authorization": "Basic YWxpY2U6c2VjcmV0"},
        timeout=10,
    )
    assert response.status_code == 400
    assert parse_challenge(response.headers["www-authenticate"])["error"] == (
        "invalid_request"
    )


def test_metadata_lists_scopes_supported(served: ResourceServed) -> None:
    url = served.resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    document = httpx.get(url, timeout=5).json()
    assert document["scopes_supported"] == [
        "hr:read",
        "incidents:write",
        "kb:read",
        "notes:read",
    ]
    assert document["resource"].rstrip("/") == served.resource
    assert document["authorization_servers"]


def test_reads_are_audited_by_policy_key_never_by_token(
    oauth: OAuthServer, served: ResourceServed
) -> None:
    bearer = token(oauth, served, FULL)

    async def go() -> None:
        async with mcp_session(served.url, bearer) as s:
            await s.read_resource("docs://hr/q3-salaries")

    run(go())
    events = [
        e for e in served.memory.events if e.resource == "resource.docs://hr/{name}"
    ]
    assert any(e.decision == "allow" and e.subject == "ann" for e in events)
    assert all(bearer not in repr(e) for e in served.memory.events)
    assert all("q3-salaries" not in repr(e) for e in served.memory.events)
