"""One name per concept: every old name still works for one release and warns.

Each deprecated alias is called the old way and must (1) emit a
``DeprecationWarning`` naming the new name and (2) behave exactly as the
new name; giving both names at once is refused (which one would win is a
guess). The settings that now mean one thing everywhere (``cache_size=0``,
the data-use denial's class, ``Action``/``PIIKind``) are checked too.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import aiinvariants
from aiinvariants import (
    DataUseDenied,
    Guard,
    ModelDenied,
    Policy,
    PolicyError,
    Principal,
    ScopeDenied,
    acting_as,
    enforce_user_scope,
)
from aiinvariants._classification import AccessDecision
from aiinvariants.audit import AuditLog, BoundedSink, MemorySink
from aiinvariants.auth import IntrospectionVerifier, JWTVerifier, TokenExchanger
from aiinvariants.llm._optout import apply_opt_out
from auth_support import jwks_of, rsa_key
from oauth_support import CLIENT_ID, CLIENT_SECRET, OAuthServer, running_oauth_server

API = "https://api.example.test"


def _who(*scopes: str) -> Principal:
    return Principal(subject="alice", authenticated=True, scopes=frozenset(scopes))


# -- any_of= -> any_scopes= -------------------------------------------------------


def test_enforce_user_scope_any_of_warns_and_still_enforces() -> None:
    guard = Guard(Policy())
    with pytest.warns(DeprecationWarning, match="any_of= .*use any_scopes="):
        old = enforce_user_scope(any_of=("a", "b"), guard=guard)(lambda: "ran")
    new = enforce_user_scope(any_scopes=("a", "b"), guard=guard)(lambda: "ran")
    assert old.rule == new.rule  # type: ignore[attr-defined]
    with acting_as(_who("b")):
        assert old() == "ran"
    with acting_as(_who("c")), pytest.raises(ScopeDenied):
        old()


def test_guard_enforce_user_scope_any_of_warns_and_still_enforces() -> None:
    guard = Guard(Policy())
    with pytest.warns(DeprecationWarning, match="any_scopes="):
        old = guard.enforce_user_scope("x", any_of=("y",))(lambda: "ran")
    with acting_as(_who("x", "y")):
        assert old() == "ran"
    with acting_as(_who("x")), pytest.raises(ScopeDenied):
        old()


@pytest.mark.parametrize(
    "decorate",
    [
        lambda: enforce_user_scope(any_of=("a",), any_scopes=("b",)),
        lambda: Guard(Policy()).enforce_user_scope(any_of=("a",), any_scopes=("b",)),
    ],
)
def test_both_scope_names_at_once_are_refused(decorate: Any) -> None:
    with pytest.raises(PolicyError, match="any_scopes= only"):
        decorate()


# -- timeout / timeout_ms -> timeout_s --------------------------------------------


def test_bounded_sink_timeout_warns_and_still_bounds() -> None:
    with pytest.warns(DeprecationWarning, match="use timeout_s="):
        sink = BoundedSink(MemorySink(), timeout=0.5)
    with sink:
        assert sink.timeout_s == 0.5
        with pytest.warns(DeprecationWarning, match="use timeout_s"):
            assert sink.timeout == 0.5
    with pytest.raises(PolicyError, match="timeout_s= only"):
        BoundedSink(MemorySink(), timeout=1, timeout_s=1)
    with pytest.raises(PolicyError, match="needs timeout_s="):
        BoundedSink(MemorySink())


def test_policy_sink_timeout_ms_warns_and_becomes_seconds() -> None:
    with pytest.warns(DeprecationWarning, match="use timeout_s"):
        policy = Policy.from_dict(
            {"audit": {"sinks": [{"kind": "memory", "timeout_ms": 250}]}}
        )
    assert policy.audit.sinks[0].timeout_s == 0.25
    new = Policy.from_dict(
        {"audit": {"sinks": [{"kind": "memory", "timeout_s": 0.25}]}}
    )
    assert new.hash == policy.hash  # the same policy, whichever name wrote it
    log = AuditLog.from_policy(policy)
    with log:
        (bounded,) = log.sinks
        assert isinstance(bounded, BoundedSink)
        assert bounded.timeout_s == 0.25
    with pytest.raises(PolicyError):
        Policy.from_dict(
            {"audit": {"sinks": [{"kind": "memory", "timeout_ms": 1, "timeout_s": 1}]}}
        )


def test_a_sink_mapping_with_timeout_ms_warns_and_is_read_as_milliseconds() -> None:
    from aiinvariants.audit._policy_sinks import policy_sinks

    class Shaped:  # "any object of the same shape" as a Policy
        def __init__(self) -> None:
            self.audit = {"sinks": [{"kind": "memory", "timeout_ms": 500}]}

    with pytest.warns(DeprecationWarning, match="timeout_ms"):
        (sink,) = policy_sinks(Shaped())
    with sink:
        assert isinstance(sink, BoundedSink)
        assert sink.timeout_s == 0.5


# -- classification.Decision -> AccessDecision ----------------------------------------


def test_classification_decision_warns_and_is_access_decision() -> None:
    module = importlib.import_module("aiinvariants._classification")
    with pytest.warns(DeprecationWarning, match="use AccessDecision"):
        old = module.Decision
    assert old is AccessDecision
    with pytest.warns(DeprecationWarning, match="classification.Decision"):
        exec("from aiinvariants._classification import Decision", {})  # noqa: S102
    with pytest.raises(AttributeError):
        _ = module.NoSuchName


def test_the_audit_decision_keeps_its_name() -> None:
    from aiinvariants.audit import Decision

    assert set(Decision.__args__) == {"allow", "deny", "redact", "flag"}


# -- llm.classifiers -> filters.classifiers -------------------------------------------


def test_old_classifier_path_is_the_same_objects() -> None:
    new = importlib.import_module("aiinvariants.filters.classifiers")
    sys.modules.pop("aiinvariants.llm.classifiers", None)
    try:
        with pytest.warns(DeprecationWarning, match="aiinvariants.filters.classifiers"):
            old = importlib.import_module("aiinvariants.llm.classifiers")
    finally:
        sys.modules.pop("aiinvariants.llm.classifiers", None)
    assert old is new


# -- one definition: Action, PIIKind -------------------------------------------------


def test_action_and_pii_kind_are_defined_once() -> None:
    import aiinvariants.filters as filters
    import aiinvariants.filters._pii as pii
    import aiinvariants.policy as policy

    assert filters.Action is policy.Action
    assert pii.PIIKind is policy.PIIKind


# -- the data-use denial is its own class -----------------------------------------


def test_data_use_denial_is_its_own_class_and_still_a_model_denial() -> None:
    with pytest.raises(DataUseDenied) as info:
        apply_opt_out("openai", {"store": True}, require=True)
    assert (info.value.invariant, info.value.code) == ("I7", "data_use_opt_in")
    # what code written before still catches
    with pytest.raises(ModelDenied) as caught:
        apply_opt_out("openai", {"store": True}, require=True)
    assert type(caught.value) is DataUseDenied
    assert "DataUseDenied" in aiinvariants.__all__
    assert not issubclass(ModelDenied, DataUseDenied)


# -- cache_size=0 disables the cache, everywhere -------------------------------------


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


def test_token_exchanger_cache_size_zero_disables_the_cache(oauth: OAuthServer) -> None:
    exchanger = TokenExchanger(
        token_endpoint=oauth.token_endpoint,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        cache_size=0,
    )
    token = oauth.mint_user("alice", audience=API, scopes="billing:read")
    verifier = JWTVerifier(
        issuer=oauth.issuer, audience=API, algorithms=["RS256"], jwks=oauth.jwks()
    )
    with acting_as(verifier.verify(token)):
        first = exchanger.exchange(audience="https://billing.example.test")
        exchanger.exchange(audience="https://billing.example.test")
    assert oauth.state.exchanges == 2  # nothing was cached
    assert exchanger.audience_of(first.access_token) == "https://billing.example.test"


def _builders() -> dict[str, Any]:
    return {
        "JWTVerifier": lambda n: JWTVerifier(
            issuer="https://login.example.test",
            audience=API,
            algorithms=["RS256"],
            jwks=jwks_of(rsa_key()),
            cache_size=n,
        ),
        "IntrospectionVerifier": lambda n: IntrospectionVerifier(
            endpoint="https://login.example.test/introspect",
            issuer="https://login.example.test",
            audience=API,
            client_id="c",
            client_secret="s",
            cache_size=n,
        ),
        "TokenExchanger": lambda n: TokenExchanger(
            token_endpoint="https://login.example.test/token",
            client_id="c",
            cache_size=n,
        ),
    }


@pytest.mark.parametrize("name", sorted(_builders()))
def test_cache_size_means_the_same_everywhere(name: str) -> None:
    build = _builders()[name]
    assert build(0) is not None  # 0 disables, never an error
    assert build(10) is not None
    for bad in (-1, True, 1.5, "10"):
        with pytest.raises(PolicyError, match="cache_size"):
            build(bad)


# -- checkpoint_seconds -> checkpoint_every_s (the unit suffix every duration has) ----


def test_jsonl_sink_checkpoint_seconds_warns_and_still_checkpoints(
    tmp_path: Any,
) -> None:
    from aiinvariants.audit import JSONLSink

    with pytest.warns(DeprecationWarning, match="use checkpoint_every_s="):
        sink = JSONLSink(tmp_path / "a.jsonl", checkpoint_seconds=2.5)
    with sink:
        assert sink._shared().seconds == 2.5
    with pytest.raises(PolicyError, match="checkpoint_every_s= only"):
        JSONLSink(tmp_path / "b.jsonl", checkpoint_seconds=1, checkpoint_every_s=1)


def test_policy_jsonl_checkpoint_seconds_warns_and_is_read(tmp_path: Any) -> None:
    path = str(tmp_path / "trail" / "")
    with pytest.warns(DeprecationWarning, match="use checkpoint_every_s"):
        policy = Policy.from_dict(
            {
                "audit": {
                    "sinks": [{"kind": "jsonl", "path": path, "checkpoint_seconds": 3}]
                }
            }
        )
    assert policy.audit.sinks[0].checkpoint_every_s == 3
    with AuditLog.from_policy(policy) as log:
        (sink,) = log.sinks
        assert sink._shared().seconds == 3  # type: ignore[attr-defined]


# -- accept_anonymous= -> allow_anonymous= (the name BearerAuthMiddleware has) ---------


def test_mcp_guard_accept_anonymous_warns_and_still_lets_anonymous_in() -> None:
    pytest.importorskip("mcp")
    from aiinvariants.integrations.mcp import MCPGuard

    with pytest.warns(DeprecationWarning, match="use allow_anonymous="):
        old = MCPGuard(Guard(Policy()), accept_anonymous=True)
    assert old.current_principal().authenticated is False  # ANONYMOUS, not refused
    with pytest.raises(PolicyError, match="allow_anonymous= only"):
        MCPGuard(Guard(Policy()), accept_anonymous=True, allow_anonymous=False)


def test_fastmcp_accept_anonymous_warns_and_still_lets_anonymous_in() -> None:
    pytest.importorskip("fastmcp")
    from fastmcp import FastMCP

    from aiinvariants.integrations.fastmcp import FastMCPGuard, guard_fastmcp

    with pytest.warns(DeprecationWarning, match="use allow_anonymous="):
        installer = guard_fastmcp(Guard(Policy()), FastMCP("x"), accept_anonymous=True)
    assert installer._anonymous is True
    with pytest.warns(DeprecationWarning, match="use allow_anonymous="):
        assert FastMCPGuard(Guard(Policy()), accept_anonymous=True)._anonymous
    assert FastMCPGuard(Guard(Policy()))._anonymous is False
