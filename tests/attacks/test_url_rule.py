"""One URL rule wherever a URL receives a credential or serves trust.

Class: a URL that sends a credential or a key request somewhere an attacker
can read or answer — plain http off loopback, credentials inside the URL
(the ``@`` that disguises a host), a fragment, white space, control
characters, backslashes that parsers read differently, a host that only
looks like loopback (``localhost.evil``, ``127.0.0.1.nip.io``,
``*.localhost``). Every consumer — token exchange endpoint, JWKS URI (as
``JWTVerifier`` and ``HTTPJWKS`` take it), introspection endpoint, OAuth
metadata, the policy's URL fields and the classifiers' base URLs (their
API key must not go out over plain http) — must decide alike: one table,
and a hypothesis property over URL-like strings.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from aiinvariants import InsecureUsageWarning, PolicyError
from aiinvariants._internal.policy_types import Url
from aiinvariants._internal.urls import url_problem
from aiinvariants.auth import (
    HTTPJWKS,
    IntrospectionVerifier,
    JWTVerifier,
    TokenExchanger,
)
from aiinvariants.auth._metadata import protected_resource_metadata
from aiinvariants.filters.classifiers import (
    AzureContentSafetyClassifier,
    OpenAICompatibleClassifier,
    OpenAIModerationClassifier,
)

GOOD = [
    "https://login.example.com/oauth2/token",
    "https://login.example.com:8443/t",
    "http://127.0.0.1:8080/token",
    "http://localhost/token",
    "http://[::1]:9000/token",
    "http://127.0.0.2/t",
    "https://bücher.example/t",
]
BAD = [
    "http://login.example.com/token",
    "http://localhost.evil.test/token",
    "http://127.0.0.1.nip.io/token",
    "http://app.localhost/token",
    "https://user:pass@login.example.com/token",
    "https://user@login.example.com/token",
    "https://login.example.com@evil.test/token",
    "https://login.example.com\\@evil.test/token",
    "http://127.0.0.1\\.evil.test/token",
    "https://login.example.com/token#frag",
    "https://login.example.com/token#",
    "https://login.example.com/to ken",
    "https://login.example.com/token\n",
    "https://login.example.com/\ttoken",
    "https://login.example.com/token\x00",
    "ftp://login.example.com/token",
    "file:///etc/passwd",
    "//login.example.com/token",
    "login.example.com/token",
    "https:///token",
    "https://login.example.com:99999/token",
    "https://login.example.com:-1/token",
    "",
    "https://" + "a" * 3000 + ".example.com/",
]

Consumer = Callable[[str], Any]


def exchanger(url: str) -> Any:
    return TokenExchanger(token_endpoint=url, client_id="app")


def jwt_verifier(url: str) -> Any:
    return JWTVerifier(
        issuer="https://login.example.com",
        audience="https://api.example.com",
        algorithms=["RS256"],
        jwks_uri=url,
    )


def jwks(url: str) -> Any:
    return HTTPJWKS(url, algorithms=["RS256"])


def introspection(url: str) -> Any:
    return IntrospectionVerifier(
        endpoint=url,
        issuer="https://login.example.com",
        audience="https://api.example.com",
        client_id="app",
        client_secret="s",
    )


def metadata(url: str) -> Any:
    return protected_resource_metadata(
        resource="https://api.example.com", authorization_servers=[url]
    )


def policy_field(url: str) -> Any:
    try:
        return TypeAdapter(Url).validate_python(url)
    except ValidationError as exc:
        raise PolicyError(str(exc.errors()[0]["msg"])) from None


def moderation(url: str) -> Any:
    return OpenAIModerationClassifier(api_key="k", base_url=url)


def compatible(url: str) -> Any:
    return OpenAICompatibleClassifier(base_url=url, model="m", api_key="k")


def azure(url: str) -> Any:
    return AzureContentSafetyClassifier(endpoint=url, api_key="k")


CONSUMERS: list[Consumer] = [
    exchanger,
    jwt_verifier,
    jwks,
    introspection,
    metadata,
    policy_field,
    moderation,
    compatible,
    azure,
]
#: Consumers that take no query string (their path is appended to).
NO_QUERY = {metadata, moderation, compatible, azure}


def accepts(consumer: Consumer, url: str) -> bool:
    try:
        built = consumer(url)
    except PolicyError:
        return False
    close = getattr(built, "close", None)
    if callable(close):
        close()
    return True


@pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("url", GOOD, ids=repr)
def test_every_consumer_accepts_https_and_loopback_http(
    consumer: Consumer, url: str
) -> None:
    assert accepts(consumer, url)


@pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("url", BAD, ids=lambda u: repr(u)[:60])
def test_every_consumer_refuses_the_same_urls(consumer: Consumer, url: str) -> None:
    assert not accepts(consumer, url)


def test_refusals_name_the_field_and_the_fix() -> None:
    with pytest.raises(
        PolicyError, match="token_endpoint must not contain credentials"
    ):
        exchanger("https://u:p@login.example.com/t")
    with pytest.raises(PolicyError, match="base_url must use https"):
        moderation("http://api.example.com/v1")
    with pytest.raises(PolicyError, match=r"unsafe_allow_http=True"):
        introspection("http://login.example.com/introspect")


def test_the_unsafe_opt_in_is_named_and_warns() -> None:
    with pytest.warns(InsecureUsageWarning):
        HTTPJWKS(
            "http://keys.example.com/jwks", algorithms=["RS256"], unsafe_allow_http=True
        )
    # The opt-in accepts http, never credentials.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureUsageWarning)
        with pytest.raises(PolicyError):
            HTTPJWKS(
                "http://u:p@keys.example.com/jwks",
                algorithms=["RS256"],
                unsafe_allow_http=True,
            )


url_like = st.one_of(
    st.builds(
        lambda scheme, user, host, port, path, tail: (
            f"{scheme}://{user}{host}{port}/{path}{tail}"
        ),
        st.sampled_from(["https", "http", "HTTP", "ftp", "javascript"]),
        st.sampled_from(["", "u@", "u:p@", "@", "a%40b@"]),
        st.sampled_from(
            [
                "login.example.com",
                "localhost",
                "127.0.0.1",
                "[::1]",
                "localhost.evil",
                "127.0.0.1.evil",
                "0x7f.1",
                "127.1",
                "[::ffff:127.0.0.1]",
                "LOCALHOST",
                "localhost.",
            ]
        ),
        st.sampled_from(["", ":443", ":8080", ":0", ":65536", ":x"]),
        st.text(
            alphabet=st.characters(codec="ascii", exclude_characters="#?"), max_size=8
        ),
        st.sampled_from(["", "?a=1", "#f", "?", "#", "\\x"]),
    ),
    st.text(max_size=40),
)


@settings(max_examples=50, deadline=None)
@given(url=url_like)
def test_every_consumer_decides_as_the_one_rule(url: str) -> None:
    for consumer in (exchanger, jwks, policy_field, moderation):
        expected = url_problem(url, query=consumer not in NO_QUERY) is None
        assert accepts(consumer, url) is expected, (consumer.__name__, url)
