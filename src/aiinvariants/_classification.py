"""Classification labels, document ACLs and access decisions (I1, I2).

Every document or chunk an AI application may hand to a model carries a few
metadata keys (the *metadata schema*); :func:`decide` turns a principal and
that metadata into an :class:`AccessDecision`:

==========================  ==================================================
key                         meaning
==========================  ==================================================
``classification``          the document's label, one of the policy's
                            classifications. Required: missing or unknown is
                            a denial (fail closed).
``allowed_users``           optional; subjects allowed to read it.
``allowed_groups``          optional; groups allowed to read it.
``tenant``                  optional; when present (even as null or empty)
                            the principal's tenant must be a non-empty string
                            equal to it: a null tenant is nobody's.
``doc_id``                  optional stable document id, for audit only;
                            decisions never depend on it.
``untrusted``               optional; ``True`` marks content from outside
                            (web pages, e-mail) for run taint tracking (I12).
==========================  ==================================================

The rules of :func:`decide`:

- missing or unknown ``classification`` → deny;
- the anonymous (unauthenticated) principal → only the public label;
- an authenticated principal → a label at most its clearance; its tenant must
  match ``tenant`` when that is present; when ``allowed_users`` or
  ``allowed_groups`` is present, the principal must be one of the users or
  share one of the groups (the two lists are grants and add up; a present but
  empty list grants nobody).

The clearance comes from the policy (``policy.clearance`` maps groups and
scopes to labels) or from ``Principal.clearance`` when a verifier set it from
the policy; never from the model or the prompt. A clearance that is not one
of the policy's labels is a denial (``clearance_unknown``), as it is for
tools, the LLM guard, MCP and use cases: all resolve it with one function.

``allowed_users`` / ``allowed_groups`` may be a list of strings or, for stores
whose metadata holds only scalars (Chroma, older LlamaIndex stores), one
string of comma-separated names.

An :class:`Authorizer` decides for a batch of documents, one decision per
document *by position* (never by id: documents without an id, or with the same
id, each get their own decision). :class:`LabelAuthorizer` applies the rules
above; ``aiinvariants.integrations.cedar.CedarAuthorizer`` asks Cedar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from aiinvariants._errors import PolicyError
from aiinvariants._internal.authority import resolve_authority
from aiinvariants._internal.deprecation import moved_attribute
from aiinvariants._principal import Principal
from aiinvariants.policy import Policy

__all__ = [
    "ALLOWED_GROUPS",
    "ALLOWED_USERS",
    "CLASSIFICATION",
    "DOC_ID",
    "TENANT",
    "UNTRUSTED",
    "AccessDecision",
    "Authorizer",
    "LabelAuthorizer",
    "allowed_labels",
    "clearance_of",
    "decide",
]

#: Metadata key of the document's classification label (required).
CLASSIFICATION: Final = "classification"
#: Metadata key of the subjects allowed to read the document (optional).
ALLOWED_USERS: Final = "allowed_users"
#: Metadata key of the groups allowed to read the document (optional).
ALLOWED_GROUPS: Final = "allowed_groups"
#: Metadata key of the document's tenant (optional).
TENANT: Final = "tenant"
#: Metadata key of a stable document id (optional; audit only).
DOC_ID: Final = "doc_id"
#: Metadata key marking content from outside as untrusted (optional).
UNTRUSTED: Final = "untrusted"


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """Whether one principal may read one document, and why.

    Attributes:
        allowed: True when the document may be returned.
        code: a stable reason code: ``allowed``, ``missing_label``,
            ``unknown_label``, ``anonymous_not_public``, ``above_clearance``,
            ``tenant_mismatch``, ``not_in_acl`` or one an authorizer chose.
        invariant: ``"I2"`` for a decision about the anonymous principal,
            else ``"I1"``.
    """

    allowed: bool
    code: str
    invariant: str = "I1"

    @property
    def unlabelled(self) -> bool:
        """True when the document was refused for a missing or unknown label."""
        return self.code in ("missing_label", "unknown_label")


def clearance_of(principal: Principal, *, policy: Policy) -> str:
    """The highest label ``principal`` may read under ``policy``.

    The one resolution every enforcement point shares
    (:func:`aiinvariants._internal.authority.resolve_authority`):
    ``Principal.clearance`` wins when it is set; a clearance that is not one
    of the policy's labels is a denial; with none, the policy's clearance map
    decides. The anonymous principal always gets the public label.

    Raises:
        AccessDenied: ``clearance_unknown``.
    """
    return resolve_authority(principal, policy=policy).clearance


def allowed_labels(principal: Principal, *, policy: Policy) -> tuple[str, ...]:
    """The labels ``principal`` may read, lowest first."""
    top = policy.rank(clearance_of(principal, policy=policy))
    return policy.classifications[: top + 1]


def _names(value: object) -> frozenset[str] | None:
    # None: the list is absent. An unreadable value grants nobody.
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(item for item in value if isinstance(item, str) and item)
    return frozenset()


_CODES: Final = (
    "allowed",
    "missing_label",
    "unknown_label",
    "anonymous_not_public",
    "above_clearance",
    "tenant_mismatch",
    "not_in_acl",
)
# Decisions are immutable: share one instance per outcome, so a batch of
# thousands of documents builds no objects (the post-filter's hot path).
_OUTCOMES: Final = {
    (code, invariant): AccessDecision(code == "allowed", code, invariant)
    for code in _CODES
    for invariant in ("I1", "I2")
}


def _decider(
    principal: Principal, policy: Policy, allowed: tuple[str, ...]
) -> Callable[[Mapping[str, Any] | None], AccessDecision]:
    # Read the principal and the policy once per batch: attribute access on
    # the models dominates the per-document cost otherwise.
    authenticated = principal.authenticated
    subject, tenant_of = principal.subject, principal.tenant
    member_of = principal.groups
    allowed_set = frozenset(allowed)
    known = frozenset(policy.classifications)
    invariant = "I1" if authenticated else "I2"
    out = {code: _OUTCOMES[(code, invariant)] for code in _CODES}
    too_high = out["above_clearance" if authenticated else "anonymous_not_public"]

    def one(metadata: Mapping[str, Any] | None) -> AccessDecision:
        if not isinstance(metadata, dict | Mapping):
            return out["missing_label"]
        label = metadata.get(CLASSIFICATION)
        if not isinstance(label, str) or not label:
            return out["missing_label"]
        if label not in allowed_set:
            return too_high if label in known else out["unknown_label"]
        # A present tenant key binds the document, whatever its value: a
        # null or empty tenant is nobody's, not everybody's.
        if TENANT in metadata:
            tenant = metadata[TENANT]
            if not isinstance(tenant, str) or not tenant or tenant != tenant_of:
                return out["tenant_mismatch"]
        users = _names(metadata.get(ALLOWED_USERS))
        groups = _names(metadata.get(ALLOWED_GROUPS))
        if users is not None or groups is not None:
            # Only a verified identity can be on a list: an anonymous
            # subject name is not an identity.
            granted = authenticated and (
                subject in (users or ()) or bool(member_of & (groups or frozenset()))
            )
            if not granted:
                return out["not_in_acl"]
        return out["allowed"]

    return one


def decide(
    principal: Principal, metadata: Mapping[str, Any] | None, *, policy: Policy
) -> AccessDecision:
    """Decide whether ``principal`` may read a document with ``metadata``.

    The rules are in this module's docstring. Missing metadata, a missing or
    unknown label, a malformed ACL: each is a denial.
    """
    allowed = allowed_labels(principal, policy=policy)
    return _decider(principal, policy, allowed)(metadata)


@runtime_checkable
class Authorizer(Protocol):
    """Decides, for a batch of documents, which ones a principal may read.

    ``authorize_many`` returns exactly one decision per metadata mapping, in
    the same order; a secure retriever refuses (``PolicyError``) a result of
    another length rather than guess which decision belongs to which document.
    """

    def authorize_many(
        self, principal: Principal, metadatas: Sequence[Mapping[str, Any] | None]
    ) -> list[AccessDecision]:
        """One decision per entry of ``metadatas``, by position."""
        ...


class LabelAuthorizer:
    """The label and ACL rule of :func:`decide`, for batches.

    Its rule is expressible as a store filter (``pushdown_labels``), so secure
    retrievers can push ``classification in allowed labels`` into the store
    query and still re-check every returned document.

    Args:
        policy: the classifications and clearance map to apply.
    """

    def __init__(self, policy: Policy | None = None) -> None:
        if policy is not None and not isinstance(policy, Policy):
            raise PolicyError("LabelAuthorizer needs a Policy")
        self.policy = policy if policy is not None else Policy()

    def authorize_many(
        self, principal: Principal, metadatas: Sequence[Mapping[str, Any] | None]
    ) -> list[AccessDecision]:
        """One decision per entry of ``metadatas``, by position."""
        allowed = allowed_labels(principal, policy=self.policy)
        one = _decider(principal, self.policy, allowed)
        return [one(meta) for meta in metadatas]

    def pushdown_labels(self, principal: Principal) -> tuple[str, ...]:
        """The labels a store filter may select for ``principal``.

        Only the required ``classification`` key is pushed down, with a
        positive "is one of" test: a store that lacks the key on a document
        then leaves it out, which can never over-grant.
        """
        return allowed_labels(principal, policy=self.policy)

    def __repr__(self) -> str:
        return f"LabelAuthorizer(app={self.policy.app!r})"


def __getattr__(name: str) -> Any:
    # Decision was renamed AccessDecision: "Decision" is the audit's
    # allow/deny/redact/flag (aiinvariants.audit.Decision).
    return moved_attribute(
        __name__, name, {"Decision": ("AccessDecision", AccessDecision)}
    )
