"""The audit section of a policy: where decisions are recorded (I13).

See :mod:`aiinvariants.policy` for the whole tree.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field, StrictBool, Tag, model_validator

from aiinvariants._internal import policy_types as _pt
from aiinvariants._internal.deprecation import renamed_key
from aiinvariants._internal.policy_types import EnvName, Seconds, Text
from aiinvariants.policy._sections import _by_kind, _Section

__all__ = [
    "AuditPolicy",
    "JsonlSinkConfig",
    "LoggingSinkConfig",
    "MemorySinkConfig",
    "OtelSinkConfig",
    "SinkConfig",
]

_SINK_KINDS: Final = ("memory", "logging", "jsonl", "otel")


class _Sink(_Section):
    """Settings every sink shares.

    Attributes:
        timeout_s: a deadline for one write, in seconds; None for none.
            ``timeout_ms`` (milliseconds) is its deprecated old name.
    """

    timeout_s: Seconds | None = None

    @model_validator(mode="before")
    @classmethod
    def _former_timeout_ms(cls, data: Any) -> Any:
        return renamed_key(
            data, "timeout_ms", "timeout_s", where="audit sink", convert=_pt.ms_to_s
        )


class MemorySinkConfig(_Sink):
    """Keep events in memory (tests, in-process inspection).

    Attributes:
        capacity: the most events kept; None for no limit.
    """

    kind: Literal["memory"] = "memory"
    capacity: int | None = Field(10_000, gt=0, strict=True)


class LoggingSinkConfig(_Sink):
    """Send events to a :mod:`logging` logger.

    Attributes:
        logger: the logger name.
        level: the level events are logged at.
    """

    kind: Literal["logging"] = "logging"
    logger: Annotated[str, AfterValidator(_pt.check_logger_name)] = "aiinvariants.audit"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def _check_segment_path(value: str) -> str:
    """Only ``{host}`` and ``{pid}`` may be filled in (``{{``/``}}`` for braces)."""
    import string

    try:
        fields = [
            name
            for _, name, _, _ in string.Formatter().parse(value)
            if name is not None
        ]
    except ValueError:
        raise ValueError(
            "unbalanced { or } (write a literal brace as {{ or }})"
        ) from None
    unknown = sorted(set(fields) - {"host", "pid"})
    if unknown:
        raise ValueError(
            f"unknown field {{{unknown[0]}}}; a path may hold {{host}} and {{pid}}"
        )
    return value


class JsonlSinkConfig(_Sink):
    """A tamper-evident trail of JSON Lines segments, optionally signed (Ed25519).

    Attributes:
        path: where this process writes its segment: a directory (ending in
            ``/``), a template with ``{host}`` and ``{pid}``, or one file
            (then only one process may write it).
        sign_key_env: NAME of the environment variable holding the PEM
            Ed25519 private key; None for an unsigned trail.
        fsync: fsync after every event (durable, slower).
        checkpoint_every: events between two signed checkpoints.
        checkpoint_every_s: longest time, in seconds, between two signed
            checkpoints while events arrive (``checkpoint_seconds`` is its
            deprecated old name).
        writer_name: whose earlier segments a restarted process continues
            (default: the host name).
    """

    kind: Literal["jsonl"] = "jsonl"
    path: Annotated[Text, Field(max_length=4096), AfterValidator(_check_segment_path)]
    sign_key_env: EnvName | None = None
    fsync: StrictBool = False
    checkpoint_every: int = Field(1000, ge=1, le=1_000_000, strict=True)
    checkpoint_every_s: float = Field(10.0, gt=0, le=86_400, strict=True)
    writer_name: Annotated[Text, Field(max_length=256)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _former_checkpoint_seconds(cls, data: Any) -> Any:
        return renamed_key(
            data, "checkpoint_seconds", "checkpoint_every_s", where="jsonl sink"
        )


class OtelSinkConfig(_Sink):
    """Emit events through OpenTelemetry (needs the ``otel`` extra)."""

    kind: Literal["otel"] = "otel"


SinkConfig = Annotated[
    Annotated[MemorySinkConfig, Tag("memory")]
    | Annotated[LoggingSinkConfig, Tag("logging")]
    | Annotated[JsonlSinkConfig, Tag("jsonl")]
    | Annotated[OtelSinkConfig, Tag("otel")],
    _by_kind(_SINK_KINDS),
]
"""One audit sink, chosen by its ``kind``."""


class AuditPolicy(_Section):
    """Where decisions are recorded (I13).

    Attributes:
        sinks: the sinks every decision is written to.
        on_write_failure: ``deny`` (default): a decision that cannot be
            recorded is a denial; ``fail_open`` lets it through (insecure).
    """

    sinks: tuple[SinkConfig, ...] = ()
    on_write_failure: Literal["deny", "fail_open"] = "deny"
