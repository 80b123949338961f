"""The principal a LangChain call is made for: ambient, or from ``RunnableConfig``.

LangChain and LangGraph apps pass per-call data in
``config["configurable"]``. A guarded tool, retriever or ``ToolNode`` built
with ``principal_from_config=True`` reads ``config["configurable"]["principal"]``
and accepts it only when it is an instance of exactly
:class:`~aiinvariants.Principal` (a verified identity the app built, e.g. with
``JWTVerifier.verify``): never a user-id string, a dict shaped like a
principal, a subclass of ``Principal`` (which could override what
``authenticated`` says) or anything else a request body or a model could put
there (``principal_invalid``). When the ambient principal (``acting_as``) is
set too and differs, the call is refused (``principal_conflict``) rather than
one of the two picked. Without the option, a config that carries a principal
other than the ambient one is refused with a :class:`~aiinvariants.PolicyError`
naming the option, so it is never silently ignored (the same principal in
both places, as a graph that sets ``acting_as`` and its config does, is not
ignored: it is the one in force).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiinvariants import (
    ANONYMOUS,
    AccessDenied,
    AuthenticationRequired,
    PolicyError,
    Principal,
    current_principal,
)

if TYPE_CHECKING:
    from aiinvariants import Guard

__all__ = ["PRINCIPAL_KEY", "principal_for_call"]

#: The key of ``config["configurable"]`` a principal is read from.
PRINCIPAL_KEY: Final = "principal"


def _configured(config: Mapping[str, Any] | None) -> tuple[bool, Any]:
    if not isinstance(config, Mapping):
        return False, None
    configurable = config.get("configurable")
    if not isinstance(configurable, Mapping) or PRINCIPAL_KEY not in configurable:
        return False, None
    value = configurable[PRINCIPAL_KEY]
    return value is not None, value


def principal_for_call(
    guard: Guard,
    config: Mapping[str, Any] | None,
    *,
    enabled: bool,
    resource: str,
    where: str,
) -> Principal:
    """The principal a call with ``config`` is made for.

    Args:
        guard: whose audit log records a refusal.
        config: the call's ``RunnableConfig`` (or None).
        enabled: the object's ``principal_from_config`` option.
        resource: the resource named in a denial (``tool.send_email``).
        where: the constructor to name in the error (``guard_tool(...)``).

    Raises:
        PolicyError: the option is off and the config carries a principal
            other than the ambient one.
        AuthenticationRequired: ``principal_invalid``, the value is not
            exactly a ``Principal``.
        AccessDenied: ``principal_conflict``, an ambient principal is set
            and differs from the config's.
    """
    ambient = current_principal()
    present, value = _configured(config)
    if not present:
        return ambient
    if not enabled:
        if value == ambient and type(value) is Principal:
            return ambient  # the config agrees with acting_as: nothing ignored
        raise PolicyError(
            f"config['configurable']['{PRINCIPAL_KEY}'] is set but this object "
            f"was built without principal_from_config=True; pass it to {where} "
            "to act for that principal, or remove the key (the ambient "
            "acting_as principal is used otherwise)"
        )
    if type(value) is not Principal:
        guard.audit.deny(
            AuthenticationRequired(
                f"config['configurable']['{PRINCIPAL_KEY}'] must be a Principal "
                f"instance, got {type(value).__name__}",
                code="principal_invalid",
                subject=ambient.subject,
                resource=resource,
            ),
            principal=ambient,
        )
    if ambient != ANONYMOUS and ambient != value:
        guard.audit.deny(
            AccessDenied(
                "the ambient principal (acting_as) and the config's principal "
                "differ; refusing rather than picking one",
                code="principal_conflict",
                subject=ambient.subject,
                resource=resource,
            ),
            principal=ambient,
        )
    return value
