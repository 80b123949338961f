from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinvariants import AccessDenied, Principal
from aiinvariants._classification import (
    AccessDecision,
    Authorizer,
    LabelAuthorizer,
    allowed_labels,
    clearance_of,
    decide,
)
from retrieval_support import ALICE, ANON, BOB, EVE, POLICY


def test_clearance_comes_from_the_policy() -> None:
    assert clearance_of(ANON, policy=POLICY) == "public"
    assert clearance_of(BOB, policy=POLICY) == "internal"
    assert clearance_of(ALICE, policy=POLICY) == "confidential"
    assert clearance_of(EVE, policy=POLICY) == "public"


def test_principal_clearance_wins_when_known_and_is_refused_when_unknown() -> None:
    cleared = Principal(subject="c", authenticated=True, clearance="restricted")
    assert clearance_of(cleared, policy=POLICY) == "restricted"
    # An unknown label was once read as "no clearance" and skipped: a denial.
    odd = Principal(subject="c", authenticated=True, clearance="cosmic")
    with pytest.raises(AccessDenied) as info:
        clearance_of(odd, policy=POLICY)
    assert info.value.code == "clearance_unknown"


@pytest.mark.parametrize(
    ("meta", "code"),
    [
        (None, "missing_label"),
        ({}, "missing_label"),
        ({"classification": ""}, "missing_label"),
        ({"classification": 3}, "missing_label"),
        ({"classification": "secret"}, "unknown_label"),
        ({"classification": "internal"}, "anonymous_not_public"),
        ({"classification": "public", "tenant": "acme"}, "tenant_mismatch"),
        ({"classification": "public", "allowed_users": ["anonymous"]}, "not_in_acl"),
    ],
)
def test_anonymous_denials(meta: dict[str, Any] | None, code: str) -> None:
    decision = decide(ANON, meta, policy=POLICY)
    assert decision == AccessDecision(False, code, "I2")


def test_anonymous_reads_public() -> None:
    assert decide(ANON, {"classification": "public"}, policy=POLICY).allowed


@pytest.mark.parametrize(
    ("who", "meta", "allowed", "code"),
    [
        (BOB, {"classification": "internal"}, True, "allowed"),
        (BOB, {"classification": "confidential"}, False, "above_clearance"),
        (ALICE, {"classification": "confidential", "tenant": "acme"}, True, "allowed"),
        (EVE, {"classification": "public", "tenant": "acme"}, False, "tenant_mismatch"),
        (
            BOB,
            {"classification": "public", "allowed_users": "alice"},
            False,
            "not_in_acl",
        ),
        (
            ALICE,
            {"classification": "public", "allowed_users": "x, alice"},
            True,
            "allowed",
        ),
        (
            BOB,
            {"classification": "public", "allowed_groups": ["employees"]},
            True,
            "allowed",
        ),
        (BOB, {"classification": "public", "allowed_groups": []}, False, "not_in_acl"),
        (BOB, {"classification": "public", "allowed_users": 7}, False, "not_in_acl"),
        (
            BOB,
            {
                "classification": "public",
                "allowed_users": ["alice"],
                "allowed_groups": "employees",
            },
            True,
            "allowed",
        ),
    ],
)
def test_authenticated_rules(
    who: Principal, meta: dict[str, Any], allowed: bool, code: str
) -> None:
    decision = decide(who, meta, policy=POLICY)
    assert (decision.allowed, decision.code, decision.invariant) == (
        allowed,
        code,
        "I1",
    )


def test_batch_decisions_are_by_position_even_without_ids() -> None:
    # Regression: a library gave every document of a batch the decision of
    # the last one when documents had no id.
    metas: list[dict[str, Any] | None] = [
        {"classification": "restricted"},
        {"classification": "restricted"},
        {"classification": "public"},
    ]
    decisions = LabelAuthorizer(POLICY).authorize_many(ANON, metas)
    assert [d.allowed for d in decisions] == [False, False, True]
    assert isinstance(LabelAuthorizer(POLICY), Authorizer)


LABELS = st.sampled_from([*POLICY.classifications, "secret", None])
META = st.fixed_dictionaries(
    {},
    optional={
        "classification": LABELS,
        "tenant": st.sampled_from(["acme", "globex"]),
        "allowed_users": st.lists(st.sampled_from(["alice", "bob", "anonymous"])),
        "allowed_groups": st.lists(st.sampled_from(["finance", "employees"])),
    },
)
PRINCIPALS = st.sampled_from([ANON, ALICE, BOB, EVE])


@given(PRINCIPALS, META)
def test_property_decide_is_within_clearance(
    who: Principal, meta: dict[str, Any]
) -> None:
    decision = decide(who, meta, policy=POLICY)
    if decision.allowed:
        assert meta.get("classification") in allowed_labels(who, policy=POLICY)
        if not who.authenticated:
            assert meta["classification"] == "public"
        if meta.get("tenant") is not None:
            assert meta["tenant"] == who.tenant
    if meta.get("classification") not in POLICY.classifications:
        assert not decision.allowed
        assert decision.unlabelled
