"""The pytest plugin, run by pytest itself through pytester."""

from __future__ import annotations

import pytest

GUARDED = """
import asyncio
import pytest
from aiinvariants import Guard, current_principal
from aiinvariants.audit import MemorySink
from aiinvariants.testing import assert_allowed, assert_denied

guard = Guard(sinks=[MemorySink()])

@guard.enforce_user_scope("crm:read")
def read_customer(customer_id):
    return {"id": customer_id, "for": current_principal().subject}

@guard.enforce_user_scope("crm:read")
async def read_async(customer_id):
    await asyncio.sleep(0)
    return customer_id
"""


def test_markers_fixtures_and_assertions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        GUARDED
        + """
@pytest.mark.acting_as("alice", scopes="crm:read", groups=["employees"])
def test_marker_user():
    assert current_principal().subject == "alice"
    assert current_principal().groups == frozenset({"employees"})
    assert assert_allowed(read_customer, 7) == {"id": 7, "for": "alice"}
    assert assert_allowed(read_async, 8) == 8

@pytest.mark.anonymous
def test_marker_anonymous():
    denial = assert_denied(read_customer, 7, code="authentication_required")
    assert denial.invariant == "I1"

def test_fixtures(as_user, as_anonymous, capture_decisions):
    with as_user("bob", scopes="tickets:read"):
        assert_denied(read_customer, 1, invariant="I1", code="scope_missing")
        assert_denied(read_async, 1, code="scope_missing")
    with as_user("carol", scopes=["crm:read"]):
        read_customer(2)
    with as_anonymous():
        assert_denied(read_customer, 3)
    assert capture_decisions.reasons() == [
        "scope_missing", "scope_missing", "scopes_held", "authentication_required"
    ]
    assert [e.subject for e in capture_decisions.denied()] == [
        "bob", "bob", "anonymous"
    ]
    assert len(capture_decisions.about("I1")) == 4

def test_default_is_anonymous():
    assert current_principal().authenticated is False
"""
    )
    # The inner run has no pyproject: pytest-asyncio (pulled in by
    # langchain-tests) would warn about its unset loop scope.
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=4)


def test_failure_messages_are_readable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        GUARDED
        + """
@pytest.mark.acting_as("alice", scopes="crm:read")
def test_expected_denial_but_allowed():
    assert_denied(read_customer, 7, code="scope_missing")

@pytest.mark.acting_as("bob", scopes="kb:read")
def test_expected_allowed_but_denied():
    assert_allowed(read_customer, 7)

@pytest.mark.acting_as("bob", scopes="kb:read")
def test_denied_for_another_reason():
    assert_denied(read_customer, 7, code="authentication_required")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*expected a denial with code 'scope_missing', but the call was "
            "allowed for subject 'alice'*",
            "*expected the call to be allowed, but it was denied: ScopeDenied "
            "[[]I1/scope_missing[]]*(subject 'bob')*",
            "*expected a denial with code 'authentication_required', got ScopeDenied*",
        ]
    )


def test_both_markers_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.anonymous
@pytest.mark.acting_as("alice")
def test_confused():
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*either @pytest.mark.acting_as*"])


def test_the_plugin_does_not_import_the_library_until_used(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import sys

def test_not_loaded():
    assert "aiinvariants" not in sys.modules
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_stats_option_writes_every_result(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest
from aiinvariants.testing import assert_holds_with_probability

def test_holds():
    assert_holds_with_probability(lambda: True, max_violation_rate=0.05,
                                  confidence=0.9, invariant="I8")

def test_fails():
    assert_holds_with_probability(lambda: False, max_violation_rate=0.05,
                                  confidence=0.9, n=10, name="always leaks")
"""
    )
    results = pytester.path / "out" / "stats.jsonl"
    results.parent.mkdir()
    results.write_text('{"left over": "from an earlier session"}\n')
    outcome = pytester.runpytest_subprocess(f"--aiinvariants-stats={results}")
    outcome.assert_outcomes(passed=1, failed=1)
    import json

    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["passed"] for r in records] == [True, False]
    assert records[0]["name"] == "test_stats_option_writes_every_result.py::test_holds"
    assert records[0]["invariant"] == "I8"
    assert records[0]["trials"] == 45  # the fewest that can pass at 5%/90%
    assert records[1]["name"] == "always leaks"
    assert records[1]["violations"] == 10


def test_stats_option_with_an_unwritable_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    outcome = pytester.runpytest_subprocess(
        f"--aiinvariants-stats={pytester.path / 'missing' / 'dir' / 's.jsonl'}"
    )
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    outcome.stderr.fnmatch_lines(["*--aiinvariants-stats: cannot write*"])
