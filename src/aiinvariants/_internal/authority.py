"""One resolution of a principal's authority, used by every enforcement point.

Tools, retrievers, the LLM guard, MCP servers and use cases all ask
:func:`resolve_authority` what a principal may do under a policy, and
:func:`enforce_caller` whether it may call in at all. No enforcement point
reads ``Principal.clearance`` itself, so they cannot disagree on defaults:

- the anonymous principal has the public label and nothing else;
- an authenticated principal with ``clearance=None`` (a hand-made principal,
  a verifier without a policy, the pytest plugin's ``as_user``) gets what the
  policy's clearance map grants its groups and scopes, never a skipped check;
- an authenticated principal whose clearance is not one of the policy's
  labels (``"Public"``, ``"top-secret"``) is refused (``clearance_unknown``),
  not treated as having no clearance;
- under ``exposure: internal`` an anonymous caller is refused
  (``authentication_required``, I2) wherever it calls in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from aiinvariants._errors import AccessDenied, AuthenticationRequired
from aiinvariants._principal import Principal, current_principal

if TYPE_CHECKING:
    from aiinvariants.audit import AuditLog
    from aiinvariants.policy import Policy

__all__ = [
    "CLEARANCE_UNKNOWN",
    "Authority",
    "Enforcer",
    "enforce_caller",
    "exposure_denial",
    "resolve_authority",
]

#: The code of the denial for a clearance label the policy does not have.
CLEARANCE_UNKNOWN: Final = "clearance_unknown"


class Enforcer(Protocol):
    """What an enforcement point holds: a policy and an audit log."""

    @property
    def policy(self) -> Policy: ...
    @property
    def audit(self) -> AuditLog: ...


@dataclass(frozen=True, slots=True)
class Authority:
    """What one principal may do under one policy.

    Attributes:
        subject: the principal's subject.
        authenticated: whether the identity was verified.
        clearance: the highest label it may read (always a policy label).
        rank: the position of ``clearance`` in the classifications.
        groups: its groups (empty when anonymous).
        tenant: its tenant, or None.
        scopes: its delegated scopes (empty when anonymous).
    """

    subject: str
    authenticated: bool
    clearance: str
    rank: int
    groups: frozenset[str]
    tenant: str | None
    scopes: frozenset[str]

    def may_read(self, label: str, policy: Policy) -> bool:
        """True when ``label`` is a policy label at most this clearance."""
        if label not in policy.classifications:
            return False
        return policy.classifications.index(label) <= self.rank


_CACHE_SIZE: Final = 4096
# Principals and policies are immutable: one resolution per pair, reused on
# every call. The objects are kept with the entry so a recycled id() never
# matches another principal.
_cache: dict[tuple[int, int], tuple[Principal, Policy, Authority]] = {}


def resolve_authority(principal: Principal, *, policy: Policy) -> Authority:
    """The effective authority of ``principal`` under ``policy``.

    Raises:
        AccessDenied: ``clearance_unknown`` - the principal carries a
            clearance that is not one of the policy's labels.
    """
    key = (id(principal), id(policy))
    hit = _cache.get(key)
    if hit is not None and hit[0] is principal and hit[1] is policy:
        return hit[2]
    authority = _resolve(principal, policy)
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[key] = (principal, policy, authority)
    return authority


def _resolve(principal: Principal, policy: Policy) -> Authority:
    if not principal.authenticated:
        return Authority(
            subject=principal.subject,
            authenticated=False,
            clearance=policy.public_label,
            rank=0,
            groups=frozenset(),
            tenant=principal.tenant,
            scopes=frozenset(),
        )
    claimed = principal.clearance
    if claimed is not None:
        if claimed not in policy.classifications:
            # A label we do not know cannot be ranked: refusing is the only
            # answer that holds for every data level.
            raise AccessDenied(
                "the principal's clearance is not one of the policy's "
                "classifications; map it in the verifier or the policy",
                code=CLEARANCE_UNKNOWN,
                subject=principal.subject,
            )
        clearance = claimed
    else:
        clearance = policy.clearance.resolve(
            authenticated=True, groups=principal.groups, scopes=principal.scopes
        )
    return Authority(
        subject=principal.subject,
        authenticated=True,
        clearance=clearance,
        rank=policy.classifications.index(clearance),
        groups=principal.groups,
        tenant=principal.tenant,
        scopes=principal.scopes,
    )


def exposure_denial(
    policy: Policy, principal: Principal, *, resource: str
) -> AuthenticationRequired | None:
    """The denial of an anonymous caller of an internal app, else None."""
    if principal.authenticated or policy.exposure != "internal":
        return None
    return AuthenticationRequired(
        "this app is internal (exposure: internal): it needs an authenticated user",
        code="authentication_required",
        invariant="I2",
        subject=principal.subject,
        resource=resource,
    )


def enforce_caller(
    guard: Enforcer,
    *,
    resource: str,
    principal: Principal | None = None,
    record: bool = True,
    details: Mapping[str, str | int | float | bool | None] | None = None,
) -> tuple[Principal, Authority]:
    """Admit a caller at an enforcement point: exposure, then authority.

    Args:
        guard: whose policy decides (a Guard, or any enforcement point with
            ``policy`` and ``audit``) and whose audit log records a denial.
        resource: the enforcement point, for the audit event.
        principal: defaults to the current principal.
        record: False for a dry run: a denial is raised, not audited.
        details: extra audit details of a denial.

    Returns:
        the principal and its resolved authority.

    Raises:
        AuthenticationRequired: an anonymous caller of an internal app.
        AccessDenied: ``clearance_unknown``.
    """
    who = current_principal() if principal is None else principal
    policy = guard.policy
    denial = exposure_denial(policy, who, resource=resource)
    if denial is None:
        try:
            return who, resolve_authority(who, policy=policy)
        except AccessDenied as exc:
            exc.resource = resource
            denial_details = dict(details or {})
            denial_details["clearance"] = (who.clearance or "")[:64]
            if not record:
                raise
            guard.audit.deny(exc, principal=who, details=denial_details)
    if not record:
        raise denial
    guard.audit.deny(denial, principal=who, details=details)
