"""aiinvariants: security invariants for AI applications, enforced in-process.

The core API. Filters, authentication, audit sinks, integrations and the
testing toolkit are reached by their own module paths.
"""

from __future__ import annotations

from aiinvariants._errors import (
    AccessDenied,
    AIInvariantsError,
    AuditUnavailable,
    AuthenticationRequired,
    DataUseDenied,
    InsecureUsageWarning,
    InvariantViolation,
    MissingIntegrationError,
    ModelDenied,
    OutputBlocked,
    PolicyError,
    RegionDenied,
    ScopeDenied,
    TokenInvalid,
    ToolForbidden,
    UseCaseNotApproved,
)
from aiinvariants._guard import Guard
from aiinvariants._internal import moved as _moved
from aiinvariants._principal import (
    ANONYMOUS,
    Principal,
    PrincipalExecutor,
    acting_as,
    carry_principal,
    current_correlation_id,
    current_principal,
)
from aiinvariants._scopes import (
    ScopeRule,
    all_of,
    any_of,
    enforce_user_scope,
    requires_authentication,
)
from aiinvariants._usecases import use_case
from aiinvariants.policy import Policy, load_policy

__version__ = "0.1.0.dev0"

__all__ = [
    "ANONYMOUS",
    "AIInvariantsError",
    "AccessDenied",
    "AuditUnavailable",
    "AuthenticationRequired",
    "DataUseDenied",
    "Guard",
    "InsecureUsageWarning",
    "InvariantViolation",
    "MissingIntegrationError",
    "ModelDenied",
    "OutputBlocked",
    "Policy",
    "PolicyError",
    "Principal",
    "PrincipalExecutor",
    "RegionDenied",
    "ScopeDenied",
    "ScopeRule",
    "TokenInvalid",
    "ToolForbidden",
    "UseCaseNotApproved",
    "acting_as",
    "all_of",
    "any_of",
    "carry_principal",
    "current_correlation_id",
    "current_principal",
    "enforce_user_scope",
    "load_policy",
    "requires_authentication",
    "use_case",
]

# Old module paths, made private in 0.2, still import for one release.
_moved.install()
