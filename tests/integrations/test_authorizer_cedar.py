from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import Guard, PolicyError, Principal, acting_as
from aiinvariants._classification import Authorizer, decide
from aiinvariants._retrieval import SecureSearch
from aiinvariants.audit import capture
from aiinvariants.integrations.cedar import CedarAuthorizer
from retrieval_support import ALICE, ANON, BOB, EVE, POLICY, corpus

# The label rule without ACLs, plus: finance may read anything internal+.
SIMPLE = """
permit(principal, action == Action::"read", resource)
when {
  resource.classification_rank <= principal.clearance &&
  (resource.tenant == "" || resource.tenant == principal.tenant) &&
  !resource.has_acl
};
permit(principal in Group::"finance", action == Action::"read", resource)
when { resource.classification == "restricted" };
"""


def metas() -> list[dict[str, Any]]:
    return [m for _, m in corpus()]


def test_cedar_decides_by_position() -> None:
    cedar = CedarAuthorizer(SIMPLE, policy=POLICY)
    assert isinstance(cedar, Authorizer)
    decisions = cedar.authorize_many(ALICE, metas())
    allowed = [m for m, d in zip(metas(), decisions, strict=True) if d.allowed]
    labels = sorted(m["classification"] for m in allowed)
    # finance reads the restricted merger plan through the second policy
    assert "restricted" in labels
    assert all(m.get("tenant") in (None, "acme") for m in allowed)
    assert all("allowed_users" not in m for m in allowed)


def test_floor_holds_whatever_cedar_says() -> None:
    everything = "permit(principal, action, resource);"
    cedar = CedarAuthorizer(everything, policy=POLICY)
    for who in (ANON, BOB):
        for meta, d in zip(metas(), cedar.authorize_many(who, metas()), strict=True):
            if meta.get("classification") not in POLICY.classifications:
                assert not d.allowed
                assert d.unlabelled
            if not who.authenticated and d.allowed:
                assert meta["classification"] == "public"


def test_bad_policies_are_refused_at_construction() -> None:
    with pytest.raises(PolicyError, match="Cedar"):
        CedarAuthorizer("permit(", policy=POLICY)


def test_cedar_in_a_secure_search_is_post_filter_only() -> None:
    guard = Guard(POLICY)
    search: SecureSearch[dict[str, Any]] = SecureSearch(
        policy=POLICY,
        audit=guard.audit,
        metadata_of=lambda d: d,
        k=3,
        authorizer=CedarAuthorizer(SIMPLE, policy=POLICY),
    )
    with capture() as events, acting_as(BOB):
        got = search.search("q", lambda n, labels: metas()[:n])
    assert all(decide(BOB, m, policy=POLICY).allowed for m in got)
    assert events[0].details["post_filter_only"] == "authorizer_not_expressible"


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([ANON, ALICE, BOB, EVE]), st.permutations(list(range(11))))
def test_property_cedar_label_rule_matches_decide_without_acls(
    who: Principal, order: list[int]
) -> None:
    docs = [metas()[i] for i in order]
    cedar = CedarAuthorizer(SIMPLE.split("permit(principal in")[0], policy=POLICY)
    for meta, d in zip(docs, cedar.authorize_many(who, docs), strict=True):
        if "allowed_users" in meta:
            assert not d.allowed
        else:
            assert d.allowed == decide(who, meta, policy=POLICY).allowed
