"""Red team, I4: tokens in the frames of a refused token-exchange answer.

A refusal of a live token endpoint's answer (echoed subject token, wrong
audience, widened scopes, garbage) is raised while the library's frames
hold the parsed answer: an error tracker or ``traceback`` logger that
prints frame locals (Sentry does by default) would print the response
body, i.e. the user's echoed token or an issued token with scopes nobody
asked for. No token, issued or inbound, is reachable from the exception,
frame locals included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from aiinvariants import Principal, TokenInvalid, acting_as
from aiinvariants.auth import JWTVerifier, TokenExchanger
from oauth_support import CLIENT_ID, CLIENT_SECRET, OAuthServer, running_oauth_server
from secret_graph import assert_no_secret_reachable, reachable

API = "https://agent.example.test"
BILLING = "https://billing.example.test"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def user(oauth: OAuthServer, **claims: Any) -> Principal:
    token = oauth.mint_user("alice", audience=API, scopes="billing:read", **claims)
    return JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks=oauth.jwks()
    ).verify(token)


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("echo", "exchange_bad_response"),
        ("wrong_audience", "exchange_audience_mismatch"),
        ("wide_scope", "exchange_scope_widened"),
    ],
)
def test_refused_answers_leave_no_token_in_frames(
    oauth: OAuthServer, mode: str, code: str
) -> None:
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    who = user(oauth)
    oauth.state.mode = mode
    with acting_as(who), pytest.raises(TokenInvalid) as info:
        exchanger.exchange(audience=BILLING, scopes=["billing:read"])
    assert info.value.code == code
    assert_no_secret_reachable(info.value, who.raw_token(), CLIENT_SECRET, frames=True)
    for path, text in reachable(info.value, frames=True):
        assert not JWT.search(text), f"a token is reachable at {path}"
