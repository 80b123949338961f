from __future__ import annotations

import enum
import json
import re
import uuid

import pytest
from pydantic import SecretStr

from aiinvariants._errors import PolicyError
from aiinvariants.audit import AuditEvent

RFC3339_UTC_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def make(**overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "invariant": "I1",
        "decision": "deny",
        "reason": "scope_missing",
        "subject": "alice",
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def test_defaults_fill_id_time_and_correlation() -> None:
    event = make()
    assert uuid.UUID(event.id).version == 4
    assert len(event.id) == 32
    assert RFC3339_UTC_MICROS.fullmatch(event.time)
    assert uuid.UUID(event.correlation_id).version == 4
    assert event.resource is None
    assert event.policy_hash == ""
    assert dict(event.details) == {}


def test_ids_are_unique_uuid4() -> None:
    ids = {make().id for _ in range(2000)}
    assert len(ids) == 2000
    for value in list(ids)[:50]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_event_is_frozen_and_details_read_only() -> None:
    source = {"count": 2}
    event = make(details=source)
    with pytest.raises(AttributeError):
        event.decision = "allow"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.details["count"] = 3  # type: ignore[index]
    source["count"] = 99  # the event took a copy
    assert event.details["count"] == 2


def test_event_is_slotted_and_hashable() -> None:
    event = make(details={"a": 1})
    assert not hasattr(event, "__dict__")
    assert {event: 1}[event] == 1


@pytest.mark.parametrize(
    "value",
    [{"nested": 1}, [1, 2], (1,), {1}, b"bytes", SecretStr("hunter2"), object()],
)
def test_nested_or_non_scalar_details_are_rejected(value: object) -> None:
    with pytest.raises(TypeError, match="detail 'bad'"):
        make(details={"bad": value})


def test_type_error_never_quotes_the_value() -> None:
    with pytest.raises(TypeError) as info:
        make(details={"bad": ["sk-live-abcdef"]})
    assert "sk-live-abcdef" not in str(info.value)


def test_non_string_detail_key_rejected() -> None:
    with pytest.raises(TypeError):
        make(details={1: "x"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_floats_rejected(value: float) -> None:
    with pytest.raises(PolicyError):
        make(details={"x": value})


def test_scalar_subclasses_are_normalised() -> None:
    class Colour(str, enum.Enum):  # noqa: UP042 - the mixin apps write
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    event = make(details={"colour": Colour.RED, "level": Level.HIGH, "ok": True})
    assert type(event.details["colour"]) is str
    assert event.details["colour"] == "red"
    assert type(event.details["level"]) is int
    assert event.details["ok"] is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("invariant", "I15"), ("invariant", "i1"), ("decision", "maybe")],
)
def test_unknown_invariant_or_decision_rejected(field: str, value: str) -> None:
    with pytest.raises(PolicyError):
        make(**{field: value})


def test_wrong_field_types_rejected() -> None:
    with pytest.raises(TypeError):
        make(subject=None)
    with pytest.raises(TypeError):
        make(resource=3)


def test_to_dict_is_json_safe_and_round_trips() -> None:
    event = make(
        resource="crm.read",
        policy_hash="sha256:abc",
        details={"missing": "crm:read", "count": 2, "score": 0.5, "none": None},
    )
    data = event.to_dict()
    assert list(data) == [
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
    ]
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert AuditEvent.from_dict(data) == event


def test_from_dict_rejects_missing_and_unknown_fields() -> None:
    data = make().to_dict()
    data.pop("reason")
    data["token"] = "x"
    with pytest.raises(PolicyError, match=r"missing 'reason'.*unknown 'token'"):
        AuditEvent.from_dict(data)
