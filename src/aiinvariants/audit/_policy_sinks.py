"""Building the audit sinks a policy's ``audit`` section declares.

:func:`policy_sinks` turns each ``audit.sinks`` entry (``memory``,
``logging``, ``jsonl``, ``otel``; ``timeout_s`` wraps it in a
:class:`~aiinvariants.audit._sinks.BoundedSink`) into a sink, and closes those
already built when one fails; :class:`~aiinvariants.audit._log.AuditLog`
(``from_policy``) and the ``Guard`` use it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from aiinvariants._errors import PolicyError
from aiinvariants._internal.deprecation import renamed_keyword
from aiinvariants.audit._sinks import AuditSink, BoundedSink, sink_name

__all__ = ["close_sinks", "config_value", "policy_sinks"]

_health = logging.getLogger("aiinvariants.audit.health")


def config_value(config: object, name: str, default: Any = None) -> Any:
    """``config[name]`` of a mapping, ``config.name`` of a model; else ``default``."""
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def policy_sinks(policy: Any) -> list[AuditSink]:
    """Build the sinks ``policy.audit.sinks`` declares, in order.

    Raises:
        PolicyError: a sink cannot be set up; those already built are closed.
    """
    configs = list(config_value(getattr(policy, "audit", None), "sinks", None) or ())
    sinks: list[AuditSink] = []
    try:
        for index, config in enumerate(configs):
            sinks.append(_build_sink(index, config))
    except BaseException:
        close_sinks(sinks)
        raise
    return sinks


def close_sinks(sinks: Iterable[AuditSink]) -> None:
    """Close each sink; errors are logged (by type only), never raised."""
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:  # the caller's error, if any, wins
            _health.error("closing %s failed (%s)", sink_name(sink), type(exc).__name__)


def _build_sink(index: int, config: object) -> AuditSink:
    where = f"audit.sinks.{index}"
    kind = config_value(config, "kind")
    sink: AuditSink
    if kind == "memory":
        from aiinvariants.audit._sinks import MemorySink

        sink = MemorySink(capacity=config_value(config, "capacity", 10_000))
    elif kind == "logging":
        from aiinvariants.audit._sinks import LoggingSink

        sink = LoggingSink(
            logger=config_value(config, "logger", None) or "aiinvariants.audit",
            level=config_value(config, "level", None) or logging.INFO,
        )
    elif kind == "jsonl":
        sink = _build_jsonl(where, config)
    elif kind == "otel":
        from aiinvariants.audit.otel import OTelSink

        sink = OTelSink()
    else:
        raise PolicyError(
            f"unknown audit sink kind {kind!r}",
            errors=[(f"{where}.kind", "expected memory, logging, jsonl or otel")],
        )
    timeout_s = _timeout_s(config)
    if timeout_s is not None:
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, int | float)
            or not 0 < timeout_s <= 60
        ):
            sink.close()
            raise PolicyError(
                "audit sink timeout_s must be a number of seconds in (0, 60]",
                errors=[(f"{where}.timeout_s", "must be a number in (0, 60]")],
            )
        sink = BoundedSink(sink, timeout_s=timeout_s)
    return sink


def _build_jsonl(where: str, config: object) -> AuditSink:
    from aiinvariants.audit._chain import JSONLSink
    from aiinvariants.audit._keys import load_signing_key

    path = config_value(config, "path")
    if not path:
        raise PolicyError(
            "a jsonl audit sink needs a path",
            errors=[(f"{where}.path", "required")],
        )
    key = None
    env = config_value(config, "sign_key_env", None)
    if env:
        value = os.environ.get(env, "")
        if not value.strip():
            raise PolicyError(
                f"the audit signing key variable {env} is not set or empty",
                errors=[(f"{where}.sign_key_env", f"{env} is not set or empty")],
            )
        try:
            key = load_signing_key(value)
        except PolicyError as exc:
            # exc never quotes the key; name the variable, not its value.
            raise PolicyError(
                f"the audit signing key in {env} is invalid: {exc.message}",
                errors=[(f"{where}.sign_key_env", exc.message)],
            ) from None
    return JSONLSink(
        path,
        signing_key=key,
        fsync=bool(config_value(config, "fsync", False)),
        checkpoint_every=config_value(config, "checkpoint_every", None) or 1000,
        checkpoint_every_s=_renamed(config, "checkpoint_seconds", "checkpoint_every_s")
        or 10.0,
        writer_name=config_value(config, "writer_name", None),
    )


def _timeout_s(config: object) -> Any:
    """``timeout_s`` of a sink entry; a mapping's deprecated ``timeout_ms``
    (the policy model converts its own) is read as milliseconds."""
    return _renamed(config, "timeout_ms", "timeout_s", scale=1 / 1000)


def _renamed(config: object, old: str, new: str, *, scale: float = 1) -> Any:
    """Setting ``new`` of a sink entry; a plain mapping may still name it
    ``old`` (warns; the policy model converts its own entries)."""
    former = config_value(config, old, None) if isinstance(config, Mapping) else None
    if isinstance(former, int | float) and not isinstance(former, bool):
        former = former * scale
    value = config_value(config, new, None)
    return renamed_keyword("audit sink", old, former, new, value, stacklevel=4)
