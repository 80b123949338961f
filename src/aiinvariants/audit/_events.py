"""The audit event: one record per decision (invariant I13).

An :class:`AuditEvent` is an immutable, flat record: who the decision was made
for, which invariant, what was decided and why, with a few scalar details.
It is built on every decision, so it is a plain slotted dataclass (no
validation framework) and cheap to create.

What an event may carry is deliberately narrow. ``details`` holds scalars only
(counts, rule ids, fingerprints, scope names): a nested structure is where a
tool output, a prompt or a token would end up by accident, so it is refused.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from aiinvariants._errors import PolicyError

__all__ = [
    "DECISIONS",
    "INVARIANTS",
    "AuditEvent",
    "Decision",
    "DetailValue",
]

Decision = Literal["allow", "deny", "redact", "flag"]
"""What a decision did: let the call through, refuse it, alter it, or note it."""

DetailValue: TypeAlias = str | int | float | bool | None
"""The only values an event's ``details`` may hold."""

DECISIONS: Final[frozenset[str]] = frozenset(("allow", "deny", "redact", "flag"))
INVARIANTS: Final[frozenset[str]] = frozenset(f"I{n}" for n in range(1, 15))

_EMPTY: Final[Mapping[str, DetailValue]] = MappingProxyType({})
_SCALARS: Final = (str, int, float, bool, type(None))
_MAX_SAFE: Final = 2**53 - 1


def new_id() -> str:
    """A fresh random identifier: a version 4 UUID as 32 hex digits.

    Built from ``os.urandom`` directly: ``uuid.uuid4().hex`` costs several
    times as much, and an id is made for every decision.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


_second: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The current time, RFC 3339 UTC with microseconds: ``…T09:30:00.123456Z``."""
    global _second
    ns = time.time_ns()
    seconds = ns // 1_000_000_000
    cached = _second  # one read: the tuple is replaced whole, never mutated
    if cached[0] != seconds:
        cached = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
        _second = cached
    return f"{cached[1]}.{(ns // 1000) % 1_000_000:06d}Z"


def _freeze_details(details: Mapping[str, Any]) -> Mapping[str, DetailValue]:
    if not details:
        return _EMPTY
    if not isinstance(details, Mapping):
        raise TypeError("audit event details must be a mapping of scalars")
    frozen: dict[str, DetailValue] = {}
    for key, value in details.items():
        if type(key) is not str:
            raise TypeError("audit event detail keys must be strings")
        kind = type(value)
        if kind is int or (kind is not bool and isinstance(value, int)):
            value = int(value)
            if not -_MAX_SAFE <= value <= _MAX_SAFE:
                # The canonical form (RFC 8785) has no exact form for it.
                raise PolicyError(
                    f"audit event detail {key!r} is an integer beyond "
                    "±(2**53 - 1); record it as a str"
                )
            frozen[key] = value
        elif kind is str or kind is bool or value is None:
            frozen[key] = value
        elif kind is float:
            if not math.isfinite(value):
                # NaN and infinities have no JSON form; the chain must stay JSON.
                raise PolicyError(f"audit event detail {key!r} is not a finite number")
            frozen[key] = value
        elif isinstance(value, _SCALARS):
            # Subclasses (IntEnum, StrEnum…) are stored as their plain value so
            # an event serialises the same way everywhere.
            if isinstance(value, bool):
                frozen[key] = bool(value)
            elif isinstance(value, str):
                frozen[key] = str.__str__(value)
            elif isinstance(value, int):
                frozen[key] = int(value)
            else:
                number = float(value)  # type: ignore[arg-type]
                if not math.isfinite(number):
                    raise PolicyError(
                        f"audit event detail {key!r} is not a finite number"
                    )
                frozen[key] = number
        else:
            # Names the key and the type only: the value may be anything, and
            # must not end up in an exception message.
            raise TypeError(
                f"audit event detail {key!r} must be a str, int, float, bool or "
                f"None, not {kind.__name__}; record counts, rule ids or "
                "fingerprints instead of structures"
            )
    return MappingProxyType(frozen)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One recorded decision.

    Build events through :meth:`AuditLog.record`, which fills in the subject,
    correlation id and policy hash and keeps tokens out; building one by hand
    is for tests and tools.

    Attributes:
        id: a random identifier (uuid4, 32 hex digits).
        time: when the decision was made, RFC 3339 UTC with microseconds,
            ending in ``Z``.
        invariant: the invariant decided on, ``"I1"`` … ``"I14"``.
        decision: ``"allow"``, ``"deny"``, ``"redact"`` or ``"flag"``.
        reason: a stable reason code, e.g. ``"scope_missing"``.
        subject: the subject of the principal the decision was made for.
        resource: what was being reached (function, tool, model…), if known.
        policy_hash: the hash of the policy in force (``"sha256:…"``).
        correlation_id: ties together the events of one request.
        details: read-only scalar details (counts, rule ids, fingerprints,
            scope names). Never a token, a secret or classified text.

    Raises:
        TypeError: a detail is not a scalar.
        PolicyError: the invariant or decision is unknown, or a detail is a
            non-finite float.
    """

    id: str = field(default_factory=new_id)
    time: str = field(default_factory=utc_now)
    invariant: str
    decision: Decision
    reason: str
    subject: str
    resource: str | None = None
    policy_hash: str = ""
    correlation_id: str = field(default_factory=new_id)
    details: Mapping[str, DetailValue] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if self.invariant not in INVARIANTS:
            raise PolicyError(
                f"unknown invariant {self.invariant!r}; expected 'I1' … 'I14'"
            )
        if self.decision not in DECISIONS:
            raise PolicyError(
                f"unknown decision {self.decision!r}; expected allow, deny, "
                "redact or flag"
            )
        if not (
            type(self.reason) is str
            and type(self.subject) is str
            and type(self.id) is str
            and type(self.time) is str
            and type(self.policy_hash) is str
            and type(self.correlation_id) is str
            and (self.resource is None or type(self.resource) is str)
        ):
            raise TypeError(
                "audit event fields must be str (resource: str or None), got "
                + ", ".join(
                    f"{name}: {type(getattr(self, name)).__name__}"
                    for name in _FIELDS[:-1]
                )
            )
        details = self.details
        if details is not _EMPTY:
            object.__setattr__(self, "details", _freeze_details(details))

    def __hash__(self) -> int:
        return hash(self.id)

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-safe dict (``details`` as a plain dict)."""
        return {
            "id": self.id,
            "time": self.time,
            "invariant": self.invariant,
            "decision": self.decision,
            "reason": self.reason,
            "subject": self.subject,
            "resource": self.resource,
            "policy_hash": self.policy_hash,
            "correlation_id": self.correlation_id,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        """Rebuild an event from :meth:`to_dict` output (e.g. a JSONL line).

        Raises:
            PolicyError: a field is missing or unknown, or a value is invalid.
            TypeError: a field or detail has the wrong type.
        """
        names = set(_FIELDS)
        missing = names - data.keys()
        extra = data.keys() - names
        if missing or extra:
            raise PolicyError(
                "not an audit event: "
                + ", ".join(
                    [f"missing {name!r}" for name in sorted(missing)]
                    + [f"unknown {name!r}" for name in sorted(extra)]
                )
            )
        return cls(**{name: data[name] for name in _FIELDS})


_FIELDS: Final[tuple[str, ...]] = (
    "id",
    "time",
    "invariant",
    "decision",
    "reason",
    "subject",
    "resource",
    "policy_hash",
    "correlation_id",
    "details",
)
