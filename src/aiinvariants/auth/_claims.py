"""Claim checks and the claims -> Principal mapping, shared by the verifiers."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

from aiinvariants._errors import PolicyError
from aiinvariants._principal import Principal, validate_scope_token
from aiinvariants.auth._jws import invalid

__all__ = [
    "ClaimMapping",
    "audience_matches",
    "check_leeway",
    "numeric_date",
    "principal_from_claims",
    "scope_claim",
    "string_claim",
]

MAX_LEEWAY_S: Final = 60


def check_leeway(leeway_s: object) -> float:
    """Validate a clock-skew leeway: a number in [0, 60] seconds.

    Raises:
        PolicyError: otherwise. A large leeway keeps expired tokens alive.
    """
    if isinstance(leeway_s, bool) or not isinstance(leeway_s, (int, float)):
        raise PolicyError("leeway_s must be a number of seconds")
    if not 0 <= leeway_s <= MAX_LEEWAY_S or not math.isfinite(leeway_s):
        raise PolicyError(
            f"leeway_s must be between 0 and {MAX_LEEWAY_S} s: a larger leeway "
            "keeps expired tokens usable"
        )
    return float(leeway_s)


#: The last second of year 9999 (RFC 7519 NumericDate, as datetime allows).
#: A date beyond it is absurd: refused, never an overflow.
MAX_NUMERIC_DATE: Final = 253_402_300_799


def numeric_date(
    claims: Mapping[str, Any], name: str, *, required: bool
) -> float | None:
    """Read a NumericDate claim: a number between 0 and year 9999.

    Never a bool or a string; never an ``OverflowError`` either: a huge
    integer, ``1e308``, ``inf`` or ``nan`` is refused with a reason code.

    Raises:
        TokenInvalid: ``missing_claim``, ``claim_type`` (not a number, or
            not finite) or ``claim_range`` (negative or past year 9999).
    """
    value = claims.get(name)
    if value is None:
        if required or name in claims:
            raise invalid("missing_claim", f"the token has no '{name}' claim")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # pyjwt historically accepted "exp": "9999999999"; RFC 7519 says number.
        raise invalid("claim_type", f"the '{name}' claim is not a NumericDate")
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid("claim_type", f"the '{name}' claim is not a NumericDate")
    # Compared before any conversion: float(10**400) would overflow.
    if not 0 <= value <= MAX_NUMERIC_DATE:
        raise invalid(
            "claim_range", f"the '{name}' claim is not a date between 1970 and 9999"
        )
    return float(value)


def scope_claim(value: str, *, name: str = "scope") -> frozenset[str]:
    """Split a ``scope`` claim as RFC 6749 section 3.3 defines: on U+0020 only.

    Fail closed on anything else: a tab, a line break, a no-break or other
    Unicode space, doubled, leading or trailing spaces, or a character
    outside the scope-token grammar make the whole token invalid rather than
    guessing where one scope ends.

    Raises:
        TokenInvalid: ``scope_malformed``.
    """
    if value == "":
        return frozenset()
    parts = value.split(" ")
    try:
        return frozenset(validate_scope_token(part) for part in parts)
    except ValueError:
        raise invalid(
            "scope_malformed",
            f"the '{name}' claim is not scope-tokens separated by single spaces",
        ) from None


def string_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    """Read a non-empty string claim.

    Raises:
        TokenInvalid: ``missing_claim`` or ``claim_type``.
    """
    value = claims.get(name)
    if value is None:
        if required:
            raise invalid("missing_claim", f"the token has no '{name}' claim")
        return None
    if not isinstance(value, str) or not value:
        raise invalid("claim_type", f"the '{name}' claim is not a non-empty string")
    return value


def audience_matches(aud: object, accepted: Collection[str]) -> bool:
    """True when ``aud`` (a string or list of strings) names an accepted audience.

    Raises:
        TokenInvalid: ``claim_type`` when ``aud`` is neither.
    """
    if isinstance(aud, str):
        return aud in accepted
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return any(a in accepted for a in aud)
    raise invalid("claim_type", "the 'aud' claim is not a string or list of strings")


class ClaimMapping:
    """Which claims give scopes, groups and the tenant.

    Args:
        scope_claims: claims read for scopes, the first present wins; a
            string is split on U+0020 only (``scope``, RFC 6749 section
            3.3), a list is taken as is (``scp``).
        groups_claims: claims read for groups or roles; every one present
            is merged.
        tenant_claim: the claim naming the tenant; None for single-tenant apps.
    """

    __slots__ = ("groups_claims", "scope_claims", "tenant_claim")

    def __init__(
        self,
        *,
        scope_claims: Sequence[str] = ("scope", "scp"),
        groups_claims: Sequence[str] = ("groups", "roles"),
        tenant_claim: str | None = "tid",
    ) -> None:
        for name, value in (
            ("scope_claims", scope_claims),
            ("groups_claims", groups_claims),
        ):
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise PolicyError(f"{name} must be a sequence of claim names")
        if tenant_claim is not None and not isinstance(tenant_claim, str):
            raise PolicyError("tenant_claim must be a claim name or None")
        self.scope_claims = tuple(scope_claims)
        self.groups_claims = tuple(groups_claims)
        self.tenant_claim = tenant_claim

    def scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        for name in self.scope_claims:
            value = claims.get(name)
            if value is None:
                continue
            if isinstance(value, str):
                return scope_claim(value, name=name)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return frozenset(value)
            raise invalid("claim_type", f"the '{name}' claim is not a scope list")
        return frozenset()

    def groups(self, claims: Mapping[str, Any]) -> frozenset[str]:
        found: set[str] = set()
        for name in self.groups_claims:
            value = claims.get(name)
            if value is None:
                continue
            if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
                found.update(value)
            else:
                # A string here would be one group, or its characters: refuse.
                raise invalid(
                    "claim_type", f"the '{name}' claim is not a list of names"
                )
        return frozenset(found)

    def tenant(self, claims: Mapping[str, Any]) -> str | None:
        if self.tenant_claim is None:
            return None
        return string_claim(claims, self.tenant_claim, required=False)


def principal_from_claims(
    claims: Mapping[str, Any],
    *,
    subject: str,
    issuer: str | None,
    mapping: ClaimMapping,
    clearance: Any,
    token: str,
) -> Principal:
    """Build the verified principal; its clearance comes from the policy only.

    Raises:
        TokenInvalid: ``claim_type`` when a scope is not an RFC 6749 token.
    """
    scopes = mapping.scopes(claims)
    groups = mapping.groups(claims)
    level = (
        None
        if clearance is None
        else clearance.resolve(authenticated=True, groups=groups, scopes=scopes)
    )
    try:
        return Principal(
            subject=subject,
            authenticated=True,
            issuer=issuer,
            scopes=scopes,
            groups=groups,
            tenant=mapping.tenant(claims),
            clearance=level,
            claims=claims,
            token=token,
        )
    except ValidationError:
        raise invalid(
            "claim_type", "the token's scopes or groups are malformed"
        ) from None
