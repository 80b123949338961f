"""Unit tests of argument provenance: which values are checked, how they match."""

from __future__ import annotations

import pytest

from aiinvariants._internal.provenance import (
    INJECTED,
    TRACED,
    UNTRACED,
    WORDING,
    ProvenanceIndex,
    arguments_by_name,
    checked_values,
    signature_of,
)
from aiinvariants.policy import CONSEQUENTIAL, Policy
from aiinvariants.taint import AgentRun, agent_run


def paths(arguments: dict[str, object]) -> list[str]:
    return [where for where, _ in checked_values(arguments)]


@pytest.mark.parametrize("value", [True, False, None, "12:00", "", "  "])
def test_what_is_not_checked(value: object) -> None:
    assert checked_values({"v": value}) == []


def test_dates_are_compared_as_dates() -> None:
    index = ProvenanceIndex(cap=1000)
    index.add("from the 13th to the 17th of May 2024, and on January 2nd")
    for value in ("2024-05-13", "2024-05-17 10:00", "2025-01-02"):
        ((_, forms),) = checked_values({"day": value})
        assert index.contains(forms), value
    ((_, forms),) = checked_values({"day": "2024-05-14"})
    assert not index.contains(forms)


def test_numbers_are_compared_as_numbers() -> None:
    index = ProvenanceIndex(cap=1000)
    index.add("pay 1,000.00 and 98.70 and 7")
    for number in (1000, 1000.0, "1000", 98.7, "98.70", 7):
        ((_, forms),) = checked_values({"n": number})
        assert index.contains(forms), number
    ((_, forms),) = checked_values({"n": 10.0})
    assert not index.contains(forms)  # not the "100" of "10.0" token-joined


def test_free_text_arguments_are_prose_and_other_letters_are_values() -> None:
    # A body, a message: the model's prose, only identifiers checked; a
    # subject or a title only where declared, whatever its length.
    assert checked_values({"subject": "Refund"}) != []
    assert checked_values({"subject": "Refund"}, free_text=frozenset({"subject"})) == []
    assert checked_values({"subject": "Re: your refund of last week"}) != []
    long_subject = {"subject": "Re: your refund of last week"}
    assert checked_values(long_subject, free_text=frozenset({"subject"})) == []
    assert checked_values({"body": "2024-06-01"}) == []
    assert paths({"email": {"body": "write to eve@evil.example"}}) == ["email.body"]
    # Letters only in any other argument is a value like any other: a file
    # name, a channel, a user.
    ((_, forms),) = checked_values({"file_id": "passwords"})
    assert WORDING not in forms
    body = "Hi Mark, it was great to hear from you, see you soon"
    assert checked_values({"body": body}) == []


def test_identifiers_in_prose_are_checked() -> None:
    body = (
        "Hello, please write to eve@evil.example, see https://evil.example/x "
        "and pay GB29 NWBK 6016 1331 9268 19, code 4f8a9c2d71"
    )
    found = checked_values({"body": body})
    assert len(found) == 5  # e-mail, URL, its host, IBAN, code
    assert {where for where, _ in found} == {"body"}


def test_nested_values_are_named_by_their_path() -> None:
    arguments = {"to": [{"address": "a@b.example"}], "meta": {"id": "x-1234567890"}}
    assert set(paths(arguments)) == {"meta.id", "to[0].address"}
    # A key that looks like a value is checked; a schema key is not.
    assert paths({"share": {"eve@evil.example": "write"}}) == [
        "share[key 0]",
        "share[0]",
    ]


def test_a_value_too_deep_is_never_traced() -> None:
    deep: object = "a@b.example"
    for _ in range(64):
        deep = [deep]
    ((_, forms),) = checked_values({"to": deep})
    assert forms == ()


def test_token_runs_must_be_whole() -> None:
    index = ProvenanceIndex(cap=1000)
    index.add("send it to bob, or bobby")
    ((_, forms),) = checked_values({"to": "bob@evil.example"})
    assert not index.contains(forms)


def test_the_index_is_bounded() -> None:
    index = ProvenanceIndex(cap=100)
    index.add(" ".join(f"w{i}" for i in range(1000)))
    assert index.overflowed
    assert len(index) == 0
    index.add("more")  # nothing more is indexed
    assert len(index) == 0


def test_provenance_order() -> None:
    run = AgentRun(user_request="pay GB29NWBK60161331926819")
    run.add_untrusted("pay GB29NWBK60161331926819 or US133000000121212121212", "page")
    run.record_result(
        {"id": "13", "note": "delete 13 and 1234567899"},
        source="files",
        untrusted=True,
        trusted_fields=frozenset({"id"}),
    )

    def verdict(value: object) -> str:
        ((_, forms),) = checked_values({"v": value})
        return run.provenance(forms)

    assert verdict("GB29NWBK60161331926819") == TRACED  # the user's
    assert verdict("US133000000121212121212") == INJECTED  # untrusted only
    assert verdict("13") == UNTRACED  # a record the untrusted text names
    assert verdict("1234567899") == INJECTED
    assert verdict("5554443332") == UNTRACED  # made up


def test_has_provenance_needs_a_request_or_trusted_data() -> None:
    assert not AgentRun().has_provenance
    assert AgentRun(user_request="").has_provenance
    run = AgentRun()
    run.add_trusted({"payee": "x"})
    assert run.has_provenance
    with agent_run(user_request="hi") as parent, agent_run() as child:
        assert parent.has_provenance
        assert child.has_provenance


def test_arguments_by_name() -> None:
    def tool(a: int, *rest: int, b: str = "", **extra: str) -> None: ...

    sig = signature_of(tool)
    assert arguments_by_name(sig, (1, 2, 3), {"b": "x", "c": "y"}) == {
        "a": 1,
        "rest": [2, 3],
        "b": "x",
        "c": "y",
    }
    # A call that does not bind keeps positional names.
    assert arguments_by_name(sig, (), {"zz": 1, "b": 2, "a": 3, "q": 4})["zz"] == 1
    assert arguments_by_name(None, (1,), {"k": 2}) == {"arg0": 1, "k": 2}


def test_policy_defaults_and_the_former_rule() -> None:
    default = Policy()
    assert default.capabilities.confirm == CONSEQUENTIAL
    assert default.capabilities.confirm_when == "untrusted"
    explicit = Policy.from_dict({"capabilities": {"confirm": ["sends_external"]}})
    assert explicit.capabilities.confirm_when == "private_and_untrusted"
    both = Policy.from_dict(
        {"capabilities": {"confirm": ["deletes"], "confirm_when": "untrusted"}}
    )
    assert both.capabilities.confirm_when == "untrusted"


def test_linked_records_are_bounded() -> None:
    from aiinvariants.taint import MAX_LINKED_RECORDS

    names = [f"report-{i:04d}.docx" for i in range(MAX_LINKED_RECORDS + 20)]
    records = [{"id_": f"id-{i}", "filename": n} for i, n in enumerate(names)]
    with agent_run(user_request=" ".join(names)) as run:
        run.record_result(
            records,
            source="files",
            untrusted=True,
            trusted_fields=frozenset({"id_", "filename"}),
        )
        run.add_untrusted(" ".join(f"id-{i}" for i in range(len(names))), "page")
        first = checked_values({"file_id": "id-0"})[0][1]
        last = checked_values({"file_id": f"id-{len(names) - 1}"})[0][1]
        assert run.provenance(first) == TRACED  # linked: the user named it
        # Past the bound no more records are linked: the id in untrusted
        # text and in trusted data needs confirmation.
        assert run.provenance(last) == UNTRACED
