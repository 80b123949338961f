from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import AuthenticationRequired, Guard, PolicyError, Principal
from aiinvariants._classification import AccessDecision, LabelAuthorizer, decide
from aiinvariants._retrieval import (
    SecureSearch,
    authorization_key,
    check_exposure,
)
from aiinvariants.audit import capture
from aiinvariants.taint import agent_run
from retrieval_support import ALICE, ANON, BOB, EVE, OPEN_POLICY, POLICY, PUBLIC_POLICY

Doc = dict[str, Any]


def meta(doc: Doc) -> Mapping[str, Any] | None:
    return doc.get("metadata")


class Store:
    """A list 'store' that records round-trips; ``labels`` is honoured unless
    ``ignore_filter`` (a store that silently ignores a filter key)."""

    def __init__(self, docs: list[Doc], *, ignore_filter: bool = False) -> None:
        self.docs = docs
        self.ignore_filter = ignore_filter
        self.calls: list[tuple[int, tuple[str, ...] | None]] = []

    def fetch(self, n: int, labels: tuple[str, ...] | None) -> Sequence[Doc]:
        self.calls.append((n, labels))
        docs = self.docs
        if labels is not None and not self.ignore_filter:
            docs = [
                d
                for d in docs
                if (d.get("metadata") or {}).get("classification") in labels
            ]
        return docs[:n]

    async def afetch(self, n: int, labels: tuple[str, ...] | None) -> Sequence[Doc]:
        await asyncio.sleep(0)
        return self.fetch(n, labels)


def doc(label: str | None, i: int = 0, **extra: Any) -> Doc:
    m: dict[str, Any] = {} if label is None else {"classification": label}
    m.update(extra)
    return {"text": f"doc {i}", "metadata": m}


def search(guard: Guard, **kw: Any) -> SecureSearch[Doc]:
    return SecureSearch(policy=guard.policy, audit=guard.audit, metadata_of=meta, **kw)


@pytest.fixture
def guard() -> Guard:
    return Guard(OPEN_POLICY)


def test_overfetch_keeps_top_k_full_in_bounded_rounds(guard: Guard) -> None:
    docs = [doc("restricted", i) for i in range(50)] + [
        doc("public", i) for i in range(5)
    ]
    store = Store(docs)
    s = search(guard, k=3, pushdown=False)
    with capture() as events:
        got = s.search("q", store.fetch, principal=ANON)
    assert len(got) == 3
    assert all(d["metadata"]["classification"] == "public" for d in got)
    assert [n for n, _ in store.calls] == [12, 48, 192]
    assert all(labels is None for _, labels in store.calls)
    (event,) = events
    assert event.invariant == "I2"
    assert event.reason == "retrieval"
    assert event.details["returned"] == 3
    assert event.details["rounds"] == 3
    assert event.details["pushdown"] is False
    assert event.details["post_filter_only"] == "store_not_expressible"
    assert "doc" not in repr(event.details)


def test_rounds_are_bounded(guard: Guard) -> None:
    store = Store([doc("restricted", i) for i in range(10_000)])
    s = search(guard, k=2, pushdown=False, max_rounds=2)
    assert s.search("q", store.fetch, principal=ANON) == []
    assert len(store.calls) == 2


def test_pushdown_fetches_k_once(guard: Guard) -> None:
    docs = [doc("restricted", i) for i in range(50)] + [
        doc("internal", i) for i in range(5)
    ]
    store = Store(docs)
    s = search(guard, k=3)
    with capture() as events:
        got = s.search("q", store.fetch, principal=BOB)
    assert len(got) == 3
    assert store.calls == [(3, ("public", "internal"))]
    assert events[0].details["pushdown"] is True
    assert events[0].details["post_filter_only"] is None


def test_a_filter_the_store_ignores_is_still_post_filtered(guard: Guard) -> None:
    store = Store(
        [doc("restricted", i) for i in range(20)] + [doc("public")], ignore_filter=True
    )
    got = search(guard, k=2).search("q", store.fetch, principal=ANON)
    assert [d["metadata"]["classification"] for d in got] == ["public"]


def test_missing_labels_are_dropped_and_counted(guard: Guard) -> None:
    store = Store([doc(None, 1), doc("secret", 2), doc("public", 3)])
    with capture() as events:
        got = search(guard, k=3, pushdown=False).search(
            "q", store.fetch, principal=ALICE
        )
    assert [d["text"] for d in got] == ["doc 3"]
    assert events[0].details["dropped"] == 2
    assert events[0].details["dropped_unlabelled"] == 2


def test_batch_where_the_last_document_is_allowed(guard: Guard) -> None:
    store = Store([doc("restricted", 1), doc("confidential", 2), doc("public", 3)])
    got = search(guard, k=3, pushdown=False, max_rounds=1).search(
        "q", store.fetch, principal=ANON
    )
    assert [d["text"] for d in got] == ["doc 3"]


class NoLabels:
    """An authorizer that can push down, but allows no label at all."""

    def __init__(self) -> None:
        self.inner = LabelAuthorizer(POLICY)

    def authorize_many(
        self, principal: Principal, metadatas: Any
    ) -> list[AccessDecision]:
        return self.inner.authorize_many(principal, metadatas)

    def pushdown_labels(self, principal: Principal) -> tuple[str, ...]:
        return ()


def test_empty_allowed_set_sends_no_query(guard: Guard) -> None:
    store = Store([doc("public")])
    with capture() as events:
        got = search(guard, authorizer=NoLabels()).search(
            "q", store.fetch, principal=ANON
        )
    assert got == []
    assert store.calls == []
    assert events[0].details["post_filter_only"] == "empty_allowed_set"
    # the same through a label restriction
    s = search(guard, labels=["confidential"])
    assert s.search("q", store.fetch, principal=ANON) == []
    assert store.calls == []


def test_label_restriction_applies_after_the_authorizer(guard: Guard) -> None:
    store = Store([doc("internal", 1), doc("public", 2)])
    got = search(guard, labels=["public"], pushdown=False).search(
        "q", store.fetch, principal=BOB
    )
    assert [d["text"] for d in got] == ["doc 2"]


class Short:
    def authorize_many(
        self, principal: Principal, metadatas: Any
    ) -> list[AccessDecision]:
        return [AccessDecision(True, "allowed")]


def test_an_authorizer_returning_the_wrong_count_is_refused(guard: Guard) -> None:
    store = Store([doc("public", 1), doc("public", 2)])
    with pytest.raises(PolicyError, match="one per document"):
        search(guard, authorizer=Short()).search("q", store.fetch, principal=ANON)


def test_authorizer_without_pushdown_is_post_filter_only(guard: Guard) -> None:
    s = search(guard, authorizer=Short())
    assert s.post_filter_reason == "authorizer_not_expressible"


def test_requires_authentication(guard: Guard) -> None:
    s = search(guard, requires_authentication=True)
    with capture() as events, pytest.raises(AuthenticationRequired):
        s.search("q", Store([]).fetch, principal=ANON)
    assert events[0].decision == "deny"


def test_taint_marks(guard: Guard) -> None:
    store = Store([doc("internal", 1), doc("public", 2, untrusted=True)])
    with agent_run() as run:
        search(guard, k=2, source="kb").search("q", store.fetch, principal=BOB)
    assert run.private_sources == ("kb",)
    assert run.untrusted_sources == ("kb",)
    with agent_run() as run:
        search(guard, k=1, source="kb").search(
            "q", Store([doc("public")]).fetch, principal=BOB
        )
    assert not run.tainted


def test_cache_is_keyed_by_authorization(guard: Guard) -> None:
    store = Store([doc("internal", 1), doc("public", 2)])
    s = search(guard, k=2, cache_size=8)
    assert len(s.search("q", store.fetch, principal=BOB)) == 2
    assert len(s.search("q", store.fetch, principal=BOB)) == 2
    assert len(store.calls) == 1
    with capture() as events:
        assert len(s.search("q", store.fetch, principal=ANON)) == 1
    # The filtered round came back short: one unfiltered probe counts what the
    # store-side filter hid (once per retriever), and is never returned.
    assert store.calls[1:] == [(2, ("public",)), (2, None)]
    assert events[0].details["cached"] is False
    with capture() as events:
        s.search("q", store.fetch, principal=ANON)
    assert events[0].details["cached"] is True
    assert authorization_key(BOB, policy=POLICY) != authorization_key(
        EVE, policy=POLICY
    )


def test_async_search(guard: Guard) -> None:
    store = Store([doc("restricted", i) for i in range(30)] + [doc("public")])
    got = asyncio.run(
        search(guard, k=1, pushdown=False).asearch("q", store.afetch, principal=ANON)
    )
    assert len(got) == 1


def test_exposure() -> None:
    with pytest.raises(PolicyError, match="public"):
        check_exposure(PUBLIC_POLICY, data=None, requires_authentication=False)
    with pytest.raises(PolicyError):
        check_exposure(PUBLIC_POLICY, data="internal", requires_authentication=False)
    assert check_exposure(PUBLIC_POLICY, data="public", requires_authentication=False)
    assert check_exposure(PUBLIC_POLICY, data="internal", requires_authentication=True)
    assert check_exposure(POLICY, data=None, requires_authentication=False)
    with pytest.raises(PolicyError):
        check_exposure(POLICY, data="cosmic", requires_authentication=False)


def test_bad_bounds(guard: Guard) -> None:
    for kw in ({"k": 0}, {"max_rounds": 0}, {"max_fetch": 1, "k": 2}):
        with pytest.raises(PolicyError):
            search(guard, **kw)


LABEL = st.sampled_from([*POLICY.classifications, "secret", None])
CORPUS = st.lists(
    st.builds(
        lambda label, tenant, users: doc(
            label,
            0,
            **({"tenant": tenant} if tenant else {}),
            **({"allowed_users": users} if users is not None else {}),
        ),
        LABEL,
        st.sampled_from([None, "acme", "globex"]),
        st.one_of(st.none(), st.lists(st.sampled_from(["alice", "bob"]))),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    CORPUS, st.sampled_from([ANON, ALICE, BOB, EVE]), st.integers(1, 8), st.booleans()
)
def test_property_only_allowed_and_top_k_full(
    docs: list[Doc], who: Principal, k: int, pushdown: bool
) -> None:
    guard = Guard(OPEN_POLICY)
    s = search(guard, k=k, pushdown=pushdown, max_fetch=10_000, max_rounds=10)
    got = s.search("q", Store(docs).fetch, principal=who)
    allowed = [d for d in docs if decide(who, d["metadata"], policy=POLICY).allowed]
    assert all(decide(who, d["metadata"], policy=POLICY).allowed for d in got)
    assert len(got) == min(k, len(allowed))
    assert all(
        d["metadata"].get("classification") in POLICY.classifications for d in got
    )
    if not who.authenticated:
        assert all(d["metadata"]["classification"] == "public" for d in got)


def test_exposure_counts_a_label_restriction() -> None:
    assert (
        check_exposure(
            PUBLIC_POLICY, data=None, requires_authentication=False, labels=["public"]
        )
        == "public"
    )
    with pytest.raises(PolicyError):
        check_exposure(
            PUBLIC_POLICY, data=None, requires_authentication=False, labels=["internal"]
        )
