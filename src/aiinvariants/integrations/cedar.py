"""An :class:`~aiinvariants._classification.Authorizer` backed by Cedar (I1, I2).

``CedarAuthorizer(policies, policy=...)`` asks the embedded Cedar engine
(``cedarpy``) whether the principal may perform ``Action::"read"`` on each
document, in one batch. The entities come from the principal and from each
document's metadata:

- principal ``User::"<subject>"`` with attributes ``authenticated`` (Bool),
  ``tenant`` (String, ``""`` when none), ``clearance`` (Long: the rank of its
  clearance label, 0 = public) and parents ``Group::"<group>"``;
- resource ``Document::"<position in the batch>"`` (never the document's own
  id: two documents without an id, or with the same one, stay two) with
  attributes ``classification`` (String), ``classification_rank`` (Long),
  ``tenant`` (String, ``""`` when none; a present but null or empty tenant
  becomes a value no principal has), ``has_acl`` (Bool),
  ``allowed_users`` and ``allowed_groups`` (Sets of Strings).

Whatever the Cedar policies say, the library's floor holds: a document with
a missing or unknown label is denied, and the anonymous principal reaches
only public documents (I2). Cedar decides everything else; an evaluation
error is a denial (Cedar skips the policy), which fails closed.

Example policy (the label rule, with tenants)::

    permit(principal, action == Action::"read", resource)
    when { resource.classification_rank <= principal.clearance &&
           (resource.tenant == "" || resource.tenant == principal.tenant) };
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiinvariants._errors import MissingIntegrationError, PolicyError

try:
    import cedarpy
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="cedar", package="cedarpy") from exc

from aiinvariants._classification import (
    ALLOWED_GROUPS,
    ALLOWED_USERS,
    CLASSIFICATION,
    TENANT,
    LabelAuthorizer,
    clearance_of,
)
from aiinvariants._classification import (
    AccessDecision as Decision,
)
from aiinvariants._principal import Principal
from aiinvariants.policy import Policy

__all__ = ["CedarAuthorizer"]


#: The tenant of a document whose tenant key is null or empty: no principal's.
_NOBODY: Final = "\x00"


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return sorted({p.strip() for p in value.split(",") if p.strip()})
    if isinstance(value, list | tuple | set | frozenset):
        return sorted({v for v in value if isinstance(v, str) and v})
    return []


class CedarAuthorizer:
    """Decides per document with Cedar policies; batch, by position.

    Args:
        policies: Cedar policy text; validated at construction.
        policy: the classifications and clearance map (default ``Policy()``).
        action: the Cedar action id asked for.

    Raises:
        PolicyError: the Cedar policies do not parse.
    """

    def __init__(
        self, policies: str, *, policy: Policy | None = None, action: str = "read"
    ) -> None:
        self.policy = policy if policy is not None else Policy()
        try:
            self._policies = cedarpy.PolicySet.from_str(policies)
        except Exception as exc:
            raise PolicyError(f"the Cedar policies do not parse: {exc}") from None
        self._action = {"type": "Action", "id": action}
        self._floor = LabelAuthorizer(self.policy)

    def _principal_entity(self, who: Principal) -> dict[str, Any]:
        return {
            "uid": {"type": "User", "id": who.subject},
            "attrs": {
                "authenticated": who.authenticated,
                # NUL never occurs in a real tenant: keep it for _NOBODY.
                "tenant": (who.tenant or "").replace("\x00", ""),
                "clearance": self.policy.rank(clearance_of(who, policy=self.policy)),
            },
            "parents": [{"type": "Group", "id": g} for g in sorted(who.groups)]
            if who.authenticated
            else [],
        }

    def _document_entity(self, index: int, meta: Mapping[str, Any]) -> dict[str, Any]:
        users, groups = meta.get(ALLOWED_USERS), meta.get(ALLOWED_GROUPS)
        tenant = meta.get(TENANT)
        if TENANT in meta and not (isinstance(tenant, str) and tenant):
            tenant = _NOBODY  # a null or empty tenant is nobody's, not everybody's
        return {
            "uid": {"type": "Document", "id": str(index)},
            "attrs": {
                "classification": meta[CLASSIFICATION],
                "classification_rank": self.policy.rank(meta[CLASSIFICATION]),
                "tenant": tenant if isinstance(tenant, str) else "",
                "has_acl": users is not None or groups is not None,
                "allowed_users": _names(users),
                "allowed_groups": _names(groups),
            },
            "parents": [],
        }

    def authorize_many(
        self, principal: Principal, metadatas: Sequence[Mapping[str, Any] | None]
    ) -> list[Decision]:
        """One decision per entry of ``metadatas``, by position."""
        floor = self._floor.authorize_many(principal, metadatas)
        invariant = "I1" if principal.authenticated else "I2"
        decisions: list[Decision] = []
        asks: list[int] = []
        entities = [self._principal_entity(principal)]
        entities += [
            {"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []}
            for g in sorted(principal.groups)
        ]
        for index, (meta, base) in enumerate(zip(metadatas, floor, strict=True)):
            passes_floor = meta is not None and not base.unlabelled
            if passes_floor and not principal.authenticated:
                passes_floor = base.code != "anonymous_not_public"
            if not passes_floor or meta is None:
                decisions.append(base)
                continue
            decisions.append(Decision(False, "cedar_deny", invariant))
            asks.append(index)
            entities.append(self._document_entity(index, meta))
        if not asks:
            return decisions
        who = {"type": "User", "id": principal.subject}
        requests = [
            {
                "principal": who,
                "action": self._action,
                "resource": {"type": "Document", "id": str(i)},
                "context": {},
            }
            for i in asks
        ]
        results = cedarpy.is_authorized_batch(requests, self._policies, entities)
        if len(results) != len(asks):
            raise PolicyError("Cedar returned a result count unlike the requests")
        for index, result in zip(asks, results, strict=True):
            if result.allowed:
                decisions[index] = Decision(True, "allowed", invariant)
        return decisions

    def __repr__(self) -> str:
        return f"CedarAuthorizer(app={self.policy.app!r})"
