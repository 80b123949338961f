"""The exceptions aiinvariants raises, and its one warning.

Every exception the library raises on purpose is an ``AIInvariantsError``::

    AIInvariantsError(Exception)
    ├─ PolicyError(…, ValueError)          bad policy or misuse, found early
    ├─ MissingIntegrationError(…, ImportError)
    └─ InvariantViolation                  a denial at run time
       ├─ AuthenticationRequired           I1/I2: no verified principal
       │  └─ TokenInvalid                  expired, bad signature, wrong aud…
       ├─ ScopeDenied                      I1: .required .missing .www_authenticate
       ├─ AccessDenied                     I1/I2: classification / ACL / tenant
       ├─ ToolForbidden                    I3/I12
       ├─ ModelDenied                      I5: a model outside the allowed families
       │  └─ DataUseDenied                 I7: a call without data-use opt-out
       ├─ RegionDenied                     I6
       ├─ OutputBlocked                    I8/I9/I10
       ├─ UseCaseNotApproved               I11
       └─ AuditUnavailable                 I13: the decision could not be recorded

``InsecureUsageWarning`` is emitted whenever a caller names an opt-out that
weakens enforcement (``fail_open=True``, ``allow_unverified=True``…).

Each violation carries a stable ``invariant`` id (``"I1"`` … ``"I14"``) and a
stable machine-readable ``code``; both are part of the public contract and
never change meaning. ``str()`` of an exception never contains a token, a
secret value or classified text: only codes, identifiers the application chose
(scope names, tool names, model ids) and the principal's subject.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors must not import the filters at run time
    from aiinvariants.filters._base import Finding

__all__ = [
    "AIInvariantsError",
    "AccessDenied",
    "AuditUnavailable",
    "AuthenticationRequired",
    "DataUseDenied",
    "InsecureUsageWarning",
    "InvariantViolation",
    "MissingIntegrationError",
    "ModelDenied",
    "OutputBlocked",
    "PolicyError",
    "RegionDenied",
    "ScopeDenied",
    "TokenInvalid",
    "ToolForbidden",
    "UseCaseNotApproved",
]


class InsecureUsageWarning(UserWarning):
    """A caller switched off or weakened a security check by name."""


class AIInvariantsError(Exception):
    """Base class of every exception aiinvariants raises on purpose."""


class PolicyError(AIInvariantsError, ValueError):
    """A policy is invalid, or the library is used in a way it refuses.

    Raised early: when a policy is loaded, a guard is built or a decorator is
    applied, never at the first request.

    Attributes:
        file: the policy file involved, if any.
        errors: ``(field_path, message)`` pairs, one per problem found. The
            field path is dotted (``tools.refund_order.data``); list positions
            appear as numbers (``audit.sinks.0.path``).
        code: a stable machine-readable reason where one is defined
            (``unsupported_object``: no integration guards that object).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        errors: Sequence[tuple[str, str]] = (),
        code: str | None = None,
    ) -> None:
        self.file = file
        self.code = code
        self.errors: tuple[tuple[str, str], ...] = tuple(errors)
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.file}: {self.message}" if self.file else self.message
        if not self.errors:
            return head
        lines = [head]
        for path, msg in self.errors:
            where = f"{self.file}: {path}" if self.file else path
            lines.append(f"  {where}: {msg}")
        return "\n".join(lines)


class MissingIntegrationError(AIInvariantsError, ImportError):
    """An optional framework is not installed.

    The message says which extra to install, e.g.
    ``pip install "aiinvariants[langchain]"``.
    """

    def __init__(self, *, extra: str, package: str) -> None:
        self.extra = extra
        self.package = package
        super().__init__(
            f"{package} is not installed; it comes with the '{extra}' extra: "
            f'pip install "aiinvariants[{extra}]"',
            name=package,
        )


class InvariantViolation(AIInvariantsError):
    """A security invariant would have been broken, so the call was denied.

    Attributes:
        invariant: the invariant id from the design, ``"I1"`` … ``"I14"``.
        code: a stable machine-readable reason code (``"scope_missing"``…).
        reason: a short human-readable explanation, free of secrets.
        subject: the subject of the principal the call was made for.
        resource: what was being reached (a function, tool, model…), if known.
    """

    invariant: str = "I1"
    default_code: str = "invariant_violation"

    def __init__(
        self,
        reason: str,
        *,
        code: str | None = None,
        invariant: str | None = None,
        subject: str | None = None,
        resource: str | None = None,
    ) -> None:
        self.code = code or self.default_code
        if invariant is not None:
            self.invariant = invariant
        self.reason = reason
        self.subject = subject
        self.resource = resource
        super().__init__(reason)

    def __str__(self) -> str:
        where = f" ({self.resource})" if self.resource else ""
        return f"[{self.invariant}/{self.code}] {self.reason}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(invariant={self.invariant!r}, "
            f"code={self.code!r}, subject={self.subject!r}, "
            f"resource={self.resource!r})"
        )


def _quote(value: str) -> str:
    # RFC 7235 quoted-string; our values are scope tokens and URLs, which have
    # no quotes or backslashes, but escape anyway so a header can never be
    # split or extended by a value.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(**params: str | None) -> str:
    """Build an RFC 6750 ``WWW-Authenticate: Bearer`` challenge value.

    Parameters whose value is ``None`` are left out; ``scope`` etc. are quoted.
    """
    parts = [f"{key}={_quote(val)}" for key, val in params.items() if val is not None]
    return "Bearer " + ", ".join(parts) if parts else "Bearer"


class AuthenticationRequired(InvariantViolation):
    """The call needs an authenticated principal and has none (I1/I2)."""

    invariant = "I1"
    default_code = "authentication_required"

    @property
    def www_authenticate(self) -> str:
        """An RFC 6750 challenge: no error code when no credentials were sent."""
        return bearer_challenge()


class TokenInvalid(AuthenticationRequired):
    """A presented token was rejected.

    ``code`` is a stable reason (``"expired"``, ``"bad_signature"``,
    ``"wrong_audience"``…); the token itself never appears in the exception.
    """

    default_code = "token_invalid"

    @property
    def www_authenticate(self) -> str:
        return bearer_challenge(error="invalid_token", error_description=self.code)


class ScopeDenied(InvariantViolation):
    """The principal lacks a scope the call needs (I1).

    Attributes:
        required: every scope the call needs (for an any-of rule, the
            alternative that is closest to what the principal holds).
        missing: the scopes of ``required`` the principal does not hold.
        alternatives: for each way of satisfying the rule, the scopes of it
            the principal does not hold (``(("finance:admin",),
            ("orders:refund",))`` for ``finance:admin | orders:refund``);
            ``(missing,)`` when the rule has one way only.
        www_authenticate: an RFC 6750 ``insufficient_scope`` challenge whose
            ``scope`` lists all of ``required``, so a client can ask for them
            in one step.

    ``str()`` names every alternative: ``...; missing finance:admin or
    orders:refund``, never only the closest one.
    """

    invariant = "I1"
    default_code = "scope_missing"

    def __init__(
        self,
        reason: str,
        *,
        required: Iterable[str],
        missing: Iterable[str],
        alternatives: Iterable[Iterable[str]] | None = None,
        code: str | None = None,
        subject: str | None = None,
        resource: str | None = None,
        resource_metadata: str | None = None,
    ) -> None:
        self.required: tuple[str, ...] = tuple(required)
        self.missing: tuple[str, ...] = tuple(missing)
        self.alternatives: tuple[tuple[str, ...], ...] = _alternatives(
            alternatives, self.missing
        )
        self.resource_metadata = resource_metadata
        super().__init__(reason, code=code, subject=subject, resource=resource)

    @property
    def needed(self) -> str:
        """Every way to satisfy the rule, as text: ``a or (b and c)``."""
        return _needed_text(self.alternatives)

    def __str__(self) -> str:
        where = f" ({self.resource})" if self.resource else ""
        needs = f"; missing {self.needed}" if self.alternatives != ((),) else ""
        return f"[{self.invariant}/{self.code}] {self.reason}{needs}{where}"

    @property
    def www_authenticate(self) -> str:
        return bearer_challenge(
            error="insufficient_scope",
            scope=" ".join(self.required),
            resource_metadata=self.resource_metadata,
        )


def _alternatives(
    given: Iterable[Iterable[str]] | None, missing: tuple[str, ...]
) -> tuple[tuple[str, ...], ...]:
    if given is None:
        return (missing,)
    if isinstance(given, str):
        raise TypeError("alternatives= takes sets of scope names, not a string")
    ways: set[tuple[str, ...]] = set()
    for way in given:
        if isinstance(way, str):
            raise TypeError("each alternative is a set of scope names, not a string")
        ways.add(tuple(sorted(set(way))))
    return tuple(sorted(ways, key=lambda way: (len(way), way))) or (missing,)


def _needed_text(alternatives: Iterable[Iterable[str]]) -> str:
    """Render scope alternatives: ``finance:admin or orders:refund``.

    An alternative of several scopes reads ``(crm:read and reports:export)``
    when there is more than one alternative, so the text never leaves a
    reader guessing which scopes belong together.
    """
    ways = [tuple(way) for way in alternatives]
    if len(ways) == 1:
        return " and ".join(ways[0])
    parts = []
    for way in ways:
        text = " and ".join(way)
        parts.append(f"({text})" if len(way) > 1 else text)
    return " or ".join(parts)


class AccessDenied(InvariantViolation):
    """Data above the principal's clearance, outside its tenant or ACL (I1/I2)."""

    invariant = "I1"
    default_code = "access_denied"


class ToolForbidden(InvariantViolation):
    """A tool may not be called: forbidden capability, or a tainted run (I3/I12)."""

    invariant = "I3"
    default_code = "tool_forbidden"


class ModelDenied(InvariantViolation):
    """A model outside the allowed families (I5); also the base of
    :class:`DataUseDenied`, so ``except ModelDenied`` still catches both."""

    invariant = "I5"
    default_code = "model_denied"


class DataUseDenied(ModelDenied):
    """A call that turns a provider's data-use switch on while the policy
    requires opt-out (I7, ``data_use_opt_in``)."""

    invariant = "I7"
    default_code = "data_use_opt_in"


class RegionDenied(InvariantViolation):
    """Inference outside the allowed regions, or in a region that is unknown (I6)."""

    invariant = "I6"
    default_code = "region_denied"


class OutputBlocked(InvariantViolation):
    """An output carried something it must never carry (I8/I9/I10).

    Attributes:
        rule_ids: the sorted, distinct ids of the rules that blocked
            (``("github-pat", "pii-us-ssn")``).
        findings: the blocking findings, value-free: each has a rule id, a
            span and a keyed fingerprint, never the matched text.
    """

    invariant = "I8"
    default_code = "output_blocked"

    def __init__(
        self,
        reason: str,
        *,
        code: str | None = None,
        invariant: str | None = None,
        subject: str | None = None,
        resource: str | None = None,
        findings: Iterable[Finding] = (),
    ) -> None:
        super().__init__(
            reason, code=code, invariant=invariant, subject=subject, resource=resource
        )
        self.findings: tuple[Finding, ...] = tuple(findings)
        self.rule_ids: tuple[str, ...] = tuple(
            sorted({f.rule_id for f in self.findings})
        )


class UseCaseNotApproved(InvariantViolation):
    """A high-risk use case ran without a recorded, unexpired approval (I11)."""

    invariant = "I11"
    default_code = "use_case_not_approved"


class AuditUnavailable(InvariantViolation):
    """A decision could not be recorded, and the policy makes that a denial (I13)."""

    invariant = "I13"
    default_code = "audit_unavailable"
