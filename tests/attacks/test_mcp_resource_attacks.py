"""Attacks on guarded MCP resources and prompts (official SDK), by class.

Each class asks what the caller finally receives, through every route the
SDK offers to the same data:

- URI spellings: the same resource spelled another way (case, escapes,
  dot segments, ``%2F``/``%5C``/``%00`` in a variable, encoded twice,
  trailing slash, query, fragment, userinfo, port, white space, non-ASCII
  lookalikes) never reaches an entry less strict than its canonical form's;
- routing: the SDK answers a URI with another handler than the policy's
  most specific key: both entries decide;
- side doors: subscriptions, ``subscriptions/listen``, completions and the
  listings reveal nothing a read would refuse;
- raw JSON-RPC: odd params (a list, a number, a missing uri), batches and
  method spellings never skip the decision;
- results: a label above the declared level is withheld wherever it sits;
- identity and secrets: no token, another audience's token, a token in the
  query or in two headers reads nothing, and no URI or token lands in an
  error or audit event.

A hypothesis property: any URI that no declared key matches is refused.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from aiinvariants import Guard, Policy, Principal
from aiinvariants._internal.resource_uris import ResourceURIError, canonical_uri
from aiinvariants.resources import check_resource
from mcp_resource_support import (
    POLICY,
    SECRET_TEXT,
    ResourceServed,
    build_resource_server,
    running_resource_server,
)
from oauth_support import OAuthServer, running_oauth_server

RESOURCE = "https://mcp.attacks.test/mcp"
FULL = "hr:read kb:read notes:read incidents:write"


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def in_process(
    oauth: OAuthServer, scopes: str, monkeypatch: pytest.MonkeyPatch
) -> ResourceServed:
    """The guarded server, its identity a verified token of ``scopes``."""
    served = build_resource_server(oauth, RESOURCE)
    monkeypatch.setenv(
        "ATTACK_TOKEN", oauth.mint_user("eve", audience=RESOURCE, scopes=scopes)
    )
    served.mcp_guard.stdio_identity_from_env("ATTACK_TOKEN")
    return served


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


async def _outcome(call: Any) -> str:
    try:
        result = await call
    except MCPError as exc:
        data = exc.data if isinstance(exc.data, dict) else {}
        return "denied:" + str(data.get("code", exc.code))
    return "ok:" + json.dumps(result.model_dump(mode="json", by_alias=True))


def reads(served: ResourceServed, uris: list[str]) -> dict[str, str]:
    async def go() -> dict[str, str]:
        async with Client(served.server) as client:
            return {uri: await _outcome(client.read_resource(uri)) for uri in uris}

    return dict(run(go()))


def raw(served: ResourceServed, method: str, params: Any) -> str:
    async def go() -> str:
        async with Client(served.server) as client:
            session = client.session
            try:
                result = await session._dispatcher.send_raw_request(method, params)
            except MCPError as exc:
                data = exc.data if isinstance(exc.data, dict) else {}
                return "denied:" + str(data.get("code", exc.code))
            return "ok:" + json.dumps(result)

    return str(run(go()))


# -- URI spellings ------------------------------------------------------------------

#: Spellings of resources a token with kb:read only must not read. Each is
#: refused: by its strict entry, as unknown, or as an invalid URI.
SPELLINGS = [
    "docs://public/secret",
    "DOCS://PUBLIC/secret",
    "docs://Public/secret",
    "docs://public/%73ecret",
    "docs://public/%73%65%63%72%65%74",
    "docs://public/./secret",
    "docs://public/x/../secret",
    "docs://public/x/%2E%2E/secret",
    "docs://public/x/%2e%2e/secret",
    "docs://public/%2E%2E%2Fhr%2Fpay",
    "docs://public/..%2Fhr%2Fpay",
    "docs://public/..%5Chr%5Cpay",
    "docs://public/%252E%252E%252Fhr",
    "docs://public//secret",
    "docs://public/secret%00.txt",
    "docs://public/secret#frag",
    "docs://public@hr/pay",
    "docs://hr/pay",
    "docs://HR/pay",
    "docs://hr:443/pay",
    "docs://hr/pay/",
    "docs://hr/pay?x=1",
    "docs://hr/%70ay",
    "docs://hr/ pay",
    "docs://hr/pay\n",
    "docs://h\u0280/pay",
    "docs://public/\uff0e\uff0e/hr",
    "vault://public/x",
    "VAULT://public/x",
    "vault://public/%78",
    "file:///kb/../etc/passwd",
    "file:///kb/a/%2E%2E/%2E%2E/etc",
    "file:///KB/a",
    "mem://undeclared",
    "mem://undeclared/",
    "mem://disabled",
    "MEM://DISABLED",
]


def test_every_spelling_of_a_stricter_resource_is_refused(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = in_process(oauth, "kb:read", monkeypatch)
    outcomes = reads(served, SPELLINGS)
    for uri, outcome in outcomes.items():
        assert outcome.startswith("denied:"), (uri, outcome)
        assert SECRET_TEXT not in outcome
    codes = {outcome.split(":", 1)[1] for outcome in outcomes.values()}
    assert codes <= {
        "scope_missing",
        "resource_unknown",
        "resource_uri_invalid",
        "resource_disabled",
        # The policy's public vault://public/{name} allows VAULT://public/x;
        # the SDK routes no handler to it (its matching is case-sensitive)
        # and answers "Unknown resource": nothing is read.
        str(-32602),
    }
    assert outcomes["VAULT://public/x"] == "denied:-32602"
    # The canonical spellings meet the strict entry, not "unknown".
    for uri in ("DOCS://PUBLIC/secret", "docs://public/%73ecret", "vault://public/%78"):
        assert outcomes[uri] == "denied:scope_missing", uri


def test_the_holder_of_the_scope_reads_canonical_spellings(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = in_process(oauth, FULL, monkeypatch)
    outcomes = reads(
        served, ["docs://public/secret", "file:///kb/a/b", "docs://hr/pay"]
    )
    assert all(o.startswith("ok:") for o in outcomes.values()), outcomes


@pytest.mark.parametrize(
    "uri",
    [
        "docs://public/a%2Fb",
        "docs://public/%2e%2e",
        "docs://public/a%5Cb",
        "docs://public/a%00",
        "docs://public/%252E%252E",
        "file:///kb/a/./b",
        "file:///kb/a%2F..%2Fb",
    ],
)
def test_unsafe_template_values_are_refused_not_matched_elsewhere(uri: str) -> None:
    # docs://{area}/{name} would match some of these if the refusal fell
    # through to a less specific template: it must not.
    guard = Guard(POLICY)
    who = Principal(subject="hr", authenticated=True, scopes=frozenset(FULL.split()))
    with pytest.raises(Exception) as info:  # noqa: PT011 - the code is asserted
        check_resource(guard, uri, principal=who)
    assert getattr(info.value, "code", None) == "resource_uri_invalid"


# -- routing ------------------------------------------------------------------------


def test_sdk_route_broader_than_the_policy_key_needs_both_entries(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The policy's best key for vault://public/x is public; the SDK answers
    # it with vault://{area}/{name}, which reads every area.
    served = in_process(oauth, "kb:read", monkeypatch)
    assert reads(served, ["vault://public/x"]) == {
        "vault://public/x": "denied:scope_missing"
    }
    served = in_process(oauth, "hr:read", monkeypatch)
    assert reads(served, ["vault://public/x"])["vault://public/x"].startswith("ok:")


# -- side doors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("resources/subscribe", {"uri": "docs://hr/pay"}),
        ("resources/subscribe", {"uri": "DOCS://hr/%70ay"}),
        ("resources/subscribe", {"uri": "mem://undeclared"}),
        (
            "completion/complete",
            {
                "ref": {"type": "ref/resource", "uri": "docs://hr/{name}"},
                "argument": {"name": "name", "value": "p"},
            },
        ),
        (
            "completion/complete",
            {
                "ref": {"type": "ref/prompt", "name": "incident"},
                "argument": {"name": "system", "value": "v"},
            },
        ),
        (
            "completion/complete",
            {
                "ref": {"type": "ref/unknown", "name": "x"},
                "argument": {"name": "a", "value": "b"},
            },
        ),
        ("prompts/get", {"name": "incident", "arguments": {"system": "x"}}),
        ("prompts/get", {"name": "raw_prompt"}),
        ("prompts/get", {"name": ["incident"]}),
        ("resources/read", {"uri": ["docs://hr/pay"]}),
        ("resources/read", {"uri": 7}),
        ("resources/read", {}),
        ("resources/read", {"uri": "docs://hr/pay", "extra": "docs://public/a"}),
    ],
)
def test_side_doors_and_odd_params_are_decided(
    oauth: OAuthServer,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    params: dict[str, Any],
) -> None:
    served = in_process(oauth, "kb:read", monkeypatch)
    outcome = raw(served, method, params)
    # Refused by the guard (its own codes), before the SDK's validation.
    assert outcome in {
        "denied:scope_missing",
        "denied:resource_unknown",
        "denied:prompt_unknown",
        "denied:resource_uri_invalid",
    }, outcome


def test_listings_reveal_nothing_a_read_refuses(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = in_process(oauth, "", monkeypatch)

    async def go() -> dict[str, list[str]]:
        async with Client(served.server) as client:
            resources = (await client.list_resources()).resources
            templates = (await client.list_resource_templates()).resource_templates
            prompts = (await client.list_prompts()).prompts
            listed = [str(r.uri) for r in resources]
            readable = [
                uri
                for uri in listed
                if (await _outcome(client.read_resource(uri))).startswith("ok:")
                or uri == "mem://mislabelled"  # listed: declared public
            ]
            return {
                "resources": listed,
                "readable": readable,
                "templates": [t.uri_template for t in templates],
                "prompts": [p.name for p in prompts],
            }

    got = run(go())
    assert got["resources"] == got["readable"]
    assert "docs://public/secret" not in got["resources"]
    assert got["templates"] == ["docs://public/{name}"]
    assert got["prompts"] == ["summarise"]


def test_listen_for_a_refused_resource_is_refused(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = in_process(oauth, "kb:read", monkeypatch)
    params = {"notifications": {"resourceSubscriptions": ["docs://hr/pay"]}}
    guard_chain = served.server.middleware
    read_guard = next(m for m in guard_chain if type(m).__name__ == "ReadGuard")
    who = served.mcp_guard.current_principal()

    async def go() -> str:
        try:
            await read_guard.decide("subscriptions/listen", params, who, record=True)
        except Exception as exc:
            return str(getattr(exc, "code", type(exc).__name__))
        return "allowed"

    assert run(go()) == "scope_missing"


# -- results ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"classification": "confidential"},
        {"Classification": "public"},  # a variant key counts as unknown
        {"items": [{"metadata": {"classification": "restricted"}}]},
        {"classification": "top-secret"},
        json.dumps({"inner": json.dumps({"classification": "internal"})}),
    ],
)
def test_labels_above_the_declared_level_are_withheld(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch, payload: Any
) -> None:
    served = in_process(oauth, FULL, monkeypatch)

    @served.server.resource("mem://crafted")
    def crafted() -> str:
        return payload if isinstance(payload, str) else json.dumps(payload)

    policy = Policy.from_dict(
        {
            **json.loads(POLICY.model_dump_json()),
            "resources": {
                **{
                    k: v.model_dump(exclude_unset=True)
                    for k, v in POLICY.resources.items()
                },
                "mem://crafted": {"data": "public"},
            },
        }
    )
    served.mcp_guard.guard.replace_policy(policy)
    outcome = reads(served, ["mem://crafted"])["mem://crafted"]
    assert outcome == "denied:mislabelled_source"


# -- identity and secrets over HTTP ---------------------------------------------------


@pytest.fixture(scope="module")
def http_served(oauth: OAuthServer) -> Iterator[ResourceServed]:
    with running_resource_server(oauth) as served:
        yield served


def _post(
    served: ResourceServed, body: Any, headers: dict[str, str], query: str = ""
) -> httpx.Response:
    return httpx.post(
        served.url + query,
        content=json.dumps(body),
        headers={
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            **headers,
        },
        timeout=10,
    )


READ_HR = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "resources/read",
    "params": {"uri": "docs://hr/pay"},
}


def test_tokens_that_must_read_nothing(
    oauth: OAuthServer, http_served: ResourceServed
) -> None:
    good = oauth.mint_user("ann", audience=http_served.resource, scopes=FULL)
    cases = {
        "none": ({}, "", 401),
        "other audience": (
            {
                "Authorization": "Bearer "
                + oauth.mint_user("m", audience="http://127.0.0.1:9/mcp", scopes=FULL)
            },
            "",
            401,
        ),
        "expired": (
            {
                "Authorization": "Bearer "
                + oauth.mint_user(
                    "m", audience=http_served.resource, scopes=FULL, lifetime_s=-120
                )
            },
            "",
            401,
        ),
        "in the query": ({}, f"?access_token={good}", 400),
        "two headers": ({"Authorization": f"Bearer {good}"}, "", None),
        "no scopes": (
            {
                "Authorization": "Bearer "
                + oauth.mint_user("n", audience=http_served.resource)
            },
            "",
            403,
        ),
    }
    for name, (headers, query, status) in cases.items():
        if name == "two headers":
            response = httpx.post(
                http_served.url,
                content=json.dumps(READ_HR),
                headers=[
                    ("Accept", "application/json, text/event-stream"),
                    ("Content-Type", "application/json"),
                    ("Authorization", f"Bearer {good}"),
                    ("authorization", "Bearer other"),
                ],
                timeout=10,
            )
            status = 400
        else:
            response = _post(http_served, READ_HR, headers, query)
        assert response.status_code == status, name
        assert SECRET_TEXT not in response.text, name
        assert good not in response.text, name
        assert good not in response.headers.get("www-authenticate", ""), name


def test_batches_are_decided_per_request(
    oauth: OAuthServer, http_served: ResourceServed
) -> None:
    bearer = oauth.mint_user("b", audience=http_served.resource, scopes="kb:read")
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        READ_HR,
    ]
    response = _post(http_served, batch, {"Authorization": f"Bearer {bearer}"})
    # The pre-check sees the refused read inside the batch: 403 step-up.
    assert response.status_code == 403
    assert 'scope="hr:read"' in response.headers["www-authenticate"]
    assert SECRET_TEXT not in response.text


def test_no_uri_or_token_in_errors_or_audit(
    oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = in_process(oauth, "kb:read", monkeypatch)
    marker = "tok_live_9f8e7d6c5b4a"
    outcomes = reads(
        served,
        [f"docs://hr/{marker}", f"zz://{marker}", f"docs://public/{marker}%2F.."],
    )
    assert all(marker not in o for o in outcomes.values()), outcomes
    token = served.mcp_guard._stdio_token or ""
    for event in served.memory.events:
        assert marker not in repr(event)
        assert token not in repr(event)


# -- a property: what no key declares is refused --------------------------------------

_SCHEMES = st.sampled_from(["docs", "DOCS", "file", "mem", "vault", "x", "zz"])
_SEGMENT = st.text(
    alphabet=st.sampled_from(list("abcXYZ019-._~%2Ef/\\:@?#[] {}")),
    min_size=0,
    max_size=12,
)


def _declared_match(uri: str) -> bool:
    from aiinvariants.resources import _lookup

    try:
        return bool(_lookup(POLICY, canonical_uri(uri)))
    except ResourceURIError:
        return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scheme=_SCHEMES, host=_SEGMENT, path=st.lists(_SEGMENT, max_size=4))
def test_uris_no_key_matches_are_always_refused(
    scheme: str, host: str, path: list[str]
) -> None:
    uri = f"{scheme}://{host}/" + "/".join(path)
    guard = Guard(POLICY)
    who = Principal(subject="p", authenticated=True, scopes=frozenset(FULL.split()))
    if _declared_match(uri):
        return  # declared: decided by its entry (tested above)
    with pytest.raises(Exception) as info:  # noqa: PT011 - the code is asserted
        check_resource(guard, uri, principal=who, record=False)
    assert getattr(info.value, "code", None) in {
        "resource_unknown",
        "resource_uri_invalid",
    }
    assert re.sub(r"\s", "", str(info.value)) == re.sub(r"\s", "", str(info.value))


@pytest.mark.parametrize(
    "path", ["/mcp/", "//mcp", "/MCP", "/%6Dcp", "/mcp?x=1", "/mcp/."]
)
def test_path_spellings_of_the_endpoint_read_nothing(
    oauth: OAuthServer, http_served: ResourceServed, path: str
) -> None:
    # Whatever route the HTTP stack takes (the pre-check, a redirect, a 404),
    # a token with no scopes never receives a scoped resource.
    bearer = oauth.mint_user("p", audience=http_served.resource)
    base = http_served.url.rsplit("/mcp", 1)[0]
    response = httpx.post(
        base + path,
        content=json.dumps(READ_HR),
        headers={
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        timeout=10,
        follow_redirects=True,
    )
    assert SECRET_TEXT not in response.text
    # The pre-check's step-up where the path reaches the endpoint; a 404
    # where it reaches nothing.
    assert response.status_code in (403, 404), response.status_code
