"""The framework-free core of secure retrieval (I1, I2).

A secure retriever is belt and braces: it pushes a filter into the store
query where the store can express it, and it *always* re-checks every
returned document against the principal with an
:class:`~aiinvariants._classification.Authorizer`. Post-filtering alone would
return fewer than ``k`` documents, so :class:`SecureSearch` over-fetches in a
bounded number of rounds until ``k`` allowed documents are found or the store
is exhausted.

Framework integrations (``aiinvariants.integrations.langchain``,
``.llamaindex``, ``.qdrant``) supply a *fetch* function
``fetch(n, labels) -> documents``: the store's top ``n`` for the query,
restricted to ``labels`` (a positive "classification is one of" filter) when
``labels`` is not None. Every retrieval records one audit event with counts
only, never document text; returned non-public documents mark the current
agent run private, and documents marked ``untrusted`` mark it untrusted (I12).

Any cache of results is keyed by the principal's authorization context
(subject, issuer, tenant, clearance, groups, scopes), never shared across
users.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from typing_extensions import Unpack

from aiinvariants._classification import (
    CLASSIFICATION,
    UNTRUSTED,
    Authorizer,
    LabelAuthorizer,
    clearance_of,
)
from aiinvariants._classification import (
    AccessDecision as Decision,
)
from aiinvariants._errors import AuthenticationRequired, PolicyError
from aiinvariants._internal.authority import enforce_caller
from aiinvariants._options import RetrievalKeywords, RetrievalOptions
from aiinvariants._principal import Principal, current_principal
from aiinvariants.audit import AuditLog
from aiinvariants.policy import Policy
from aiinvariants.taint import add_untrusted, is_untrusted, mark_private

if TYPE_CHECKING:
    from aiinvariants._guard import Guard

__all__ = [
    "AuthorizationCache",
    "RetrievalReport",
    "SecureSearch",
    "UnlabelledDataWarning",
    "authorization_key",
    "check_exposure",
    "secure_retriever",
]

D = TypeVar("D")

#: Fetch functions: ``(n, labels)`` -> the store's top ``n`` documents.
Fetch = Callable[[int, "tuple[str, ...] | None"], Sequence[D]]
AFetch = Callable[[int, "tuple[str, ...] | None"], Awaitable[Sequence[D]]]


class UnlabelledDataWarning(UserWarning):
    """A data source holds documents a secure retriever never returns.

    Emitted when documents are dropped for a missing or unknown
    ``classification`` (a misspelled key such as ``clasification``, a label
    in another case such as ``"Public"``): they are safe, but nobody can
    read them, which usually is a labelling mistake.
    """


DEFAULT_MAX_ROUNDS: Final = 4
DEFAULT_FETCH_MULTIPLIER: Final = 4
DEFAULT_MAX_FETCH: Final = 2_000


def authorization_key(principal: Principal, *, policy: Policy) -> Hashable:
    """The part of ``principal`` that decides what it may read.

    Two principals with the same key get the same documents from the label
    rule; a cache keyed by it is never shared across users.
    """
    return (
        principal.authenticated,
        principal.subject,
        principal.issuer,
        principal.tenant,
        clearance_of(principal, policy=policy),
        principal.groups,
        principal.scopes,
    )


def check_exposure(
    policy: Policy,
    *,
    data: str | None,
    requires_authentication: bool,
    labels: Sequence[str] | None = None,
) -> str:
    """Refuse a data source above public in a public app open to anonymous users.

    Args:
        policy: the app's policy.
        data: the highest label in the source; None means undeclared, which
            is treated as the highest label (fail closed).
        requires_authentication: the retriever refuses anonymous principals.
        labels: the only labels the retriever may return; when given, the
            source counts as holding at most the highest of them.

    Returns:
        the declared (or assumed) label of the source.

    Raises:
        PolicyError: the label is unknown, or the app is public, the source
            holds more than public data and anonymous callers are let in.
    """
    label = policy.highest_label if data is None else data
    rank = policy.rank(label)
    if labels is not None:
        ranks = [policy.rank(lab) for lab in labels]
        if max(ranks, default=0) < rank:
            rank = max(ranks, default=0)
            label = policy.classifications[rank]
    if policy.exposure == "public" and rank > 0 and not requires_authentication:
        raise PolicyError(
            f"the app is public but this data source holds {label!r} data; "
            f"declare data={policy.public_label!r} or pass "
            "requires_authentication=True"
        )
    return label


@dataclass(frozen=True, slots=True)
class RetrievalReport:
    """What one secure retrieval did (the audit event carries the same counts).

    Attributes:
        returned: documents handed back.
        dropped: fetched documents refused by the authorizer (last round).
        dropped_unlabelled: of ``dropped``, those with a missing/unknown label.
        rounds: store round-trips.
        fetched: documents the store returned over all rounds.
        pushdown: True when a filter was pushed into the store query.
        post_filter_reason: why no filter was pushed down, else None.
        cached: True when the result came from the authorization-keyed cache.
        dropped_mislabelled: of ``dropped``, documents above the source's
            declared data level (a mislabelled source).
        unlabelled_before_filter: documents with a missing or unknown label
            the store returned to an unfiltered probe, when a pushed-down
            label filter hid them (see :class:`UnlabelledDataWarning`).
    """

    returned: int
    dropped: int
    dropped_unlabelled: int
    rounds: int
    fetched: int
    pushdown: bool
    post_filter_reason: str | None
    cached: bool = False
    dropped_mislabelled: int = 0
    unlabelled_before_filter: int = 0


class AuthorizationCache(Generic[D]):
    """A bounded LRU cache of retrieval results, keyed by authorization.

    The key always includes :func:`authorization_key`, so one user's results
    are never served to another.
    """

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise PolicyError("AuthorizationCache size must be positive")
        self.size = size
        self._data: OrderedDict[Hashable, tuple[list[D], RetrievalReport]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[list[D], RetrievalReport] | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: Hashable, value: tuple[list[D], RetrievalReport]) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class _Round(Generic[D]):
    """The state of one over-fetching retrieval."""

    def __init__(
        self,
        search: SecureSearch[D],
        labels: tuple[str, ...] | None,
        k: int | None = None,
    ):
        self.labels = labels
        self.k = search.k if k is None else k
        self.n = self.k if labels is not None else self.k * search.multiplier
        self.n = min(self.n, search.max_fetch)
        self.rounds = 0
        self.fetched = 0
        self.kept: list[D] = []
        self.dropped = 0
        self.unlabelled = 0
        self.mislabelled = 0
        self.probed = 0
        self.done = False


class SecureSearch(Generic[D]):
    """Over-fetch, re-check every document, audit: the core of a secure retriever.

    Args:
        policy: the classifications, clearance map and exposure.
        audit: where the one event per retrieval goes.
        metadata_of: reads a document's metadata mapping.
        k: how many allowed documents to return.
        authorizer: decides per document; default :class:`LabelAuthorizer`.
        source: the name of the data source, in audit events and taints.
        pushdown: False when the store cannot express the label filter.
        post_filter_reason: why not, for the audit event.
        labels: restrict the labels this source may return (an empty set
            returns nothing and sends no query).
        requires_authentication: refuse anonymous principals
            (``AuthenticationRequired``) instead of serving public data.
        max_rounds: bound on store round-trips per retrieval.
        fetch_multiplier: growth of the fetch size between rounds.
        max_fetch: bound on the documents asked for in one round.
        cache_size: results to keep in an authorization-keyed cache; 0 = off.
        data: the source's declared data level: a ceiling. A document above
            it is dropped for everyone and audited as ``mislabelled_source``.
            None: no ceiling (undeclared sources count as the highest label).
    """

    def __init__(
        self,
        *,
        policy: Policy,
        audit: AuditLog,
        metadata_of: Callable[[D], Mapping[str, Any] | None],
        k: int = 4,
        authorizer: Authorizer | None = None,
        source: str = "retriever",
        pushdown: bool = True,
        post_filter_reason: str | None = None,
        labels: Sequence[str] | None = None,
        requires_authentication: bool = False,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        fetch_multiplier: int = DEFAULT_FETCH_MULTIPLIER,
        max_fetch: int = DEFAULT_MAX_FETCH,
        cache_size: int = 0,
        data: str | None = None,
    ) -> None:
        if not isinstance(k, int) or k < 1:
            raise PolicyError("k must be a positive integer")
        if max_rounds < 1 or fetch_multiplier < 1 or max_fetch < k:
            raise PolicyError(
                "max_rounds and fetch_multiplier must be >= 1, max_fetch >= k"
            )
        if authorizer is not None and not isinstance(authorizer, Authorizer):
            raise PolicyError("authorizer must have an authorize_many method")
        for label in labels or ():
            policy.rank(label)
        self.policy = policy
        self.audit = audit
        self.ceiling = policy.rank(data) if data is not None else None
        self._warned = False
        self._probed = False
        self.metadata_of = metadata_of
        self.k = k
        self.authorizer: Authorizer = authorizer or LabelAuthorizer(policy)
        self.source = source
        self.labels = None if labels is None else frozenset(labels)
        self.requires_authentication = requires_authentication
        self.max_rounds = max_rounds
        self.multiplier = fetch_multiplier
        self.max_fetch = max_fetch
        self.cache: AuthorizationCache[D] | None = (
            AuthorizationCache(cache_size) if cache_size else None
        )
        #: The report of the latest retrieval (for tests and benchmarks; with
        #: concurrent retrievals, whichever finished last).
        self.last_report: RetrievalReport | None = None
        pushdown_labels = getattr(self.authorizer, "pushdown_labels", None)
        self.post_filter_reason: str | None
        if not pushdown:
            self._pushdown: Callable[[Principal], tuple[str, ...]] | None = None
            self.post_filter_reason = post_filter_reason or "store_not_expressible"
        elif not callable(pushdown_labels):
            self._pushdown = None
            self.post_filter_reason = "authorizer_not_expressible"
        else:
            self._pushdown = pushdown_labels
            self.post_filter_reason = None

    @classmethod
    def from_options(
        cls,
        options: RetrievalOptions,
        *,
        policy: Policy,
        audit: AuditLog,
        metadata_of: Callable[[D], Mapping[str, Any] | None],
        source: str,
        pushdown: bool = True,
        post_filter_reason: str | None = None,
        k: int = 4,
        max_rounds: int | None = None,
    ) -> SecureSearch[D]:
        """The search an integration builds from the caller's options.

        ``source``, ``k`` and ``max_rounds`` are the integration's defaults
        (the store's type name, the inner retriever's ``k``; one round for
        an opaque retriever); the options win where they were given, except
        ``max_rounds``, which an integration may only lower. The exposure
        rule (:func:`check_exposure`) is decided first.

        Raises:
            PolicyError: exposure refused, an unknown label, bad bounds.
        """
        check_exposure(
            policy,
            data=options.data,
            requires_authentication=options.requires_authentication,
            labels=options.labels,
        )
        rounds = options.max_rounds
        if max_rounds is not None:
            rounds = min(rounds, max_rounds)
        return cls(
            policy=policy,
            audit=audit,
            metadata_of=metadata_of,
            k=options.k if options.k is not None else k,
            authorizer=options.authorizer,
            source=options.source or source,
            pushdown=pushdown,
            post_filter_reason=post_filter_reason,
            labels=options.labels,
            requires_authentication=options.requires_authentication,
            max_rounds=rounds,
            fetch_multiplier=options.fetch_multiplier,
            max_fetch=options.max_fetch,
            cache_size=options.cache_size,
            data=options.data,
        )

    # -- the steps shared by sync and async --------------------------------

    def _start(
        self, principal: Principal | None
    ) -> tuple[Principal, tuple[str, ...] | None, bool]:
        who = current_principal() if principal is None else principal
        # Exposure and the principal's authority, as every enforcement point
        # resolves them: an anonymous caller of an internal app or an
        # unknown clearance label is refused before the store is asked.
        enforce_caller(self, resource=self.source, principal=who)
        if self.requires_authentication and not who.authenticated:
            self.audit.deny(
                AuthenticationRequired(
                    "this data source needs an authenticated user",
                    subject=who.subject,
                    resource=self.source,
                    invariant="I2",
                ),
                principal=who,
            )
        labels: tuple[str, ...] | None = None
        empty = False
        if self._pushdown is not None:
            labels = tuple(self._pushdown(who))
            if self.labels is not None:
                labels = tuple(lab for lab in labels if lab in self.labels)
            empty = not labels
        elif self.labels is not None:
            empty = not self.labels
        return who, labels, empty

    def _cache_key(self, who: Principal, query: str, k: int) -> Hashable:
        return (authorization_key(who, policy=self.policy), query, k)

    def allows(self, who: Principal, doc: D) -> bool:
        """True when ``who`` may read ``doc``: the test every returned one passes.

        For code that is shown documents before the check (a caller's own
        filter callable): it must see only these.
        """
        meta = self.metadata_of(doc)
        decisions = self.authorizer.authorize_many(who, [meta])
        if not isinstance(decisions, list) or len(decisions) != 1:
            return False
        decision = decisions[0]
        if not isinstance(decision, Decision) or not decision.allowed:
            return False
        if self._above_ceiling(meta):
            return False
        return self.labels is None or (
            meta is not None and meta.get(CLASSIFICATION) in self.labels
        )

    def _absorb(self, state: _Round[D], who: Principal, batch: Sequence[D]) -> None:
        state.rounds += 1
        state.fetched += len(batch)
        metas = [self.metadata_of(doc) for doc in batch]
        decisions = self.authorizer.authorize_many(who, metas)
        if not isinstance(decisions, list) or len(decisions) != len(batch):
            raise PolicyError(
                f"the authorizer returned {len(decisions)} decisions for "
                f"{len(batch)} documents; it must return one per document"
            )
        kept: list[D] = []
        dropped = unlabelled = mislabelled = 0
        for doc, meta, decision in zip(batch, metas, decisions, strict=True):
            if not isinstance(decision, Decision) or not decision.allowed:
                dropped += 1
                unlabelled += isinstance(decision, Decision) and decision.unlabelled
                continue
            if self._above_ceiling(meta):
                dropped += 1
                mislabelled += 1
                continue
            if self.labels is not None and (
                meta is None or meta.get(CLASSIFICATION) not in self.labels
            ):
                dropped += 1
                continue
            kept.append(doc)
        state.kept, state.dropped, state.unlabelled = kept, dropped, unlabelled
        state.mislabelled = mislabelled
        exhausted = len(batch) < state.n
        full = len(kept) >= state.k
        bounded = state.n >= self.max_fetch or state.rounds >= self.max_rounds
        if full or exhausted or bounded:
            state.done = True
        else:
            state.n = min(state.n * self.multiplier, self.max_fetch)

    def _above_ceiling(self, meta: Mapping[str, Any] | None) -> bool:
        # An authorizer allowed it; the declared level still caps the source.
        if self.ceiling is None:
            return False
        label = meta.get(CLASSIFICATION) if isinstance(meta, Mapping) else None
        known = self.policy.classifications
        return (
            not isinstance(label, str)
            or label not in known
            or (known.index(label) > self.ceiling)
        )

    def _needs_probe(self, state: _Round[D], labels: tuple[str, ...] | None) -> bool:
        # A pushed-down label filter hides unlabelled documents from the
        # count; when it came back short, one unfiltered probe counts them.
        # Once per retriever: enough to warn, and a bounded cost.
        return labels is not None and len(state.kept) < state.k and not self._probed

    def _count_probe(self, state: _Round[D], batch: Sequence[D]) -> None:
        self._probed = True
        known = frozenset(self.policy.classifications)
        count = 0
        for doc in batch:
            meta = self.metadata_of(doc)
            label = meta.get(CLASSIFICATION) if isinstance(meta, Mapping) else None
            count += not isinstance(label, str) or label not in known
        state.probed = count

    def recheck(
        self, docs: Sequence[D], *, principal: Principal | None = None
    ) -> list[D]:
        """Re-check documents a framework added after the search (expansions).

        Frameworks expand results after a retriever returns them (LlamaIndex
        resolves ``IndexNode.obj`` recursively); what the caller finally
        receives passes the same authorizer and ceiling. Dropped documents
        are audited (``expansion_filtered``).
        """
        who = current_principal() if principal is None else principal
        enforce_caller(self, resource=self.source, principal=who)
        state: _Round[D] = _Round(self, None)
        state.n = len(docs) + 1  # one round, never "more to fetch"
        self._absorb(state, who, docs)
        if state.dropped:
            self.audit.record(
                invariant="I1" if who.authenticated else "I2",
                decision="redact",
                reason="expansion_filtered",
                resource=self.source,
                principal=who,
                details={
                    "received": len(docs),
                    "dropped": state.dropped,
                    "dropped_unlabelled": state.unlabelled,
                    "dropped_mislabelled": state.mislabelled,
                },
            )
        return list(state.kept)

    def _finish(
        self,
        who: Principal,
        query: str,
        state: _Round[D] | None,
        labels: tuple[str, ...] | None,
        k: int,
        cacheable: bool = True,
    ) -> list[D]:
        docs = state.kept[:k] if state is not None else []
        report = RetrievalReport(
            returned=len(docs),
            dropped=state.dropped if state else 0,
            dropped_unlabelled=state.unlabelled if state else 0,
            rounds=state.rounds if state else 0,
            fetched=state.fetched if state else 0,
            pushdown=labels is not None and state is not None,
            post_filter_reason=(
                "empty_allowed_set" if state is None else self.post_filter_reason
            ),
            dropped_mislabelled=state.mislabelled if state else 0,
            unlabelled_before_filter=state.probed if state else 0,
        )
        if self.cache is not None and state is not None and cacheable:
            self.cache.put(self._cache_key(who, query, k), (list(docs), report))
        return self._deliver(who, docs, report, k)

    def _deliver(
        self, who: Principal, docs: list[D], report: RetrievalReport, k: int
    ) -> list[D]:
        self.last_report = report
        self.audit.record(
            invariant="I1" if who.authenticated else "I2",
            decision="allow",
            reason="retrieval",
            resource=self.source,
            principal=who,
            details={
                "k": k,
                "returned": report.returned,
                "dropped": report.dropped,
                "dropped_unlabelled": report.dropped_unlabelled,
                "rounds": report.rounds,
                "fetched": report.fetched,
                "pushdown": report.pushdown,
                "post_filter_only": report.post_filter_reason,
                "cached": report.cached,
                "dropped_mislabelled": report.dropped_mislabelled,
                "unlabelled_before_filter": report.unlabelled_before_filter,
            },
        )
        self._report_labelling(who, report)
        public = self.policy.public_label
        private = False
        untrusted: list[D] = []
        for doc in docs:
            meta = self.metadata_of(doc) or {}
            private = private or meta.get(CLASSIFICATION) != public
            if is_untrusted(meta, UNTRUSTED):
                untrusted.append(doc)
        if private:
            mark_private(self.source)
        if untrusted:
            # Marks the run untrusted and records what the documents say, for
            # argument provenance (I12): a value the model takes from them is
            # injected, not made up.
            add_untrusted(untrusted, self.source)
        return list(docs)

    def _report_labelling(self, who: Principal, report: RetrievalReport) -> None:
        if report.dropped_mislabelled and not report.cached:
            self.audit.record(
                invariant="I1" if who.authenticated else "I2",
                decision="flag",
                reason="mislabelled_source",
                resource=self.source,
                principal=who,
                details={"dropped_mislabelled": report.dropped_mislabelled},
            )
        unlabelled = max(report.dropped_unlabelled, report.unlabelled_before_filter)
        if unlabelled and not self._warned and not report.cached:
            self._warned = True
            warnings.warn(
                f"data source {self.source!r}: {unlabelled} document(s) dropped "
                f"for a missing or unknown {CLASSIFICATION!r} label; every "
                "document needs the exact key 'classification' with one of "
                f"{list(self.policy.classifications)} (labels are case-sensitive)",
                UnlabelledDataWarning,
                stacklevel=4,
            )

    def _cached(self, who: Principal, query: str, k: int) -> list[D] | None:
        if self.cache is None:
            return None
        hit = self.cache.get(self._cache_key(who, query, k))
        if hit is None:
            return None
        docs, report = hit
        cached = RetrievalReport(
            returned=report.returned,
            dropped=report.dropped,
            dropped_unlabelled=report.dropped_unlabelled,
            rounds=0,
            fetched=0,
            pushdown=report.pushdown,
            post_filter_reason=report.post_filter_reason,
            cached=True,
        )
        return self._deliver(who, docs, cached, k)

    # -- entry points --------------------------------------------------------

    def _per_call_k(self, k: int | None) -> int:
        if k is None:
            return self.k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise PolicyError("k must be a positive integer")
        if k > self.max_fetch:
            raise PolicyError(
                f"k={k} is above this retriever's max_fetch ({self.max_fetch})"
            )
        return k

    def search(
        self,
        query: str,
        fetch: Fetch[D],
        *,
        principal: Principal | None = None,
        k: int | None = None,
        cacheable: bool = True,
    ) -> list[D]:
        """Return up to ``k`` documents ``principal`` may read, best first.

        Args:
            query: the query text (a cache key part; never audited).
            fetch: ``fetch(n, labels)`` returns the store's top ``n``.
            principal: default: the current principal.
            k: this call's number of documents (at most ``max_fetch``);
                default the retriever's ``k``.
            cacheable: False when ``fetch`` depends on more than the query
                (a caller's own filter): the cache is neither read nor filled.
        """
        n = self._per_call_k(k)
        who, labels, empty = self._start(principal)
        if empty:
            return self._finish(who, query, None, labels, n)
        hit = self._cached(who, query, n) if cacheable else None
        if hit is not None:
            return hit
        state: _Round[D] = _Round(self, labels, n)
        while not state.done:
            self._absorb(state, who, fetch(state.n, labels))
        if self._needs_probe(state, labels):
            self._count_probe(state, fetch(n, None))
        return self._finish(who, query, state, labels, n, cacheable)

    async def asearch(
        self,
        query: str,
        fetch: AFetch[D],
        *,
        principal: Principal | None = None,
        k: int | None = None,
        cacheable: bool = True,
    ) -> list[D]:
        """The async form of :meth:`search`."""
        n = self._per_call_k(k)
        who, labels, empty = self._start(principal)
        if empty:
            return self._finish(who, query, None, labels, n)
        hit = self._cached(who, query, n) if cacheable else None
        if hit is not None:
            return hit
        state: _Round[D] = _Round(self, labels, n)
        while not state.done:
            self._absorb(state, who, await fetch(state.n, labels))
        if self._needs_probe(state, labels):
            self._count_probe(state, await fetch(n, None))
        return self._finish(who, query, state, labels, n, cacheable)


def secure_retriever(
    guard: Guard, inner: object, /, **options: Unpack[RetrievalKeywords]
) -> object:
    """Wrap ``inner`` with its framework's secure retriever (``guard.retriever``).

    The same as ``guard.retriever(inner, ...)``, with the same keywords: the
    integration is picked from ``inner``'s type and imported only then.

    Raises:
        PolicyError: ``inner`` is from no supported framework
            (``unsupported_object``), or an option is refused (see
            :class:`~aiinvariants._options.RetrievalOptions`).
    """
    from aiinvariants.integrations._dispatch import guard_retriever

    return guard_retriever(guard, inner, RetrievalOptions(**options))
