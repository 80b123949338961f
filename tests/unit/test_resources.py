"""The core decision for resources and prompts (aiinvariants.resources)."""

from __future__ import annotations

import pytest

from aiinvariants import (
    ANONYMOUS,
    AccessDenied,
    AuthenticationRequired,
    Guard,
    Policy,
    PolicyError,
    Principal,
    ScopeDenied,
    acting_as,
)
from aiinvariants._internal.resource_uris import (
    ResourceURIError,
    canonical_uri,
    parse_key,
)
from aiinvariants.audit import MemorySink
from aiinvariants.resources import (
    RESOURCE_CODES,
    capped_resource,
    check_prompt,
    check_resource,
    resource_spec,
    scopes_supported,
)
from aiinvariants.taint import agent_run

POLICY = Policy.from_dict(
    {
        "exposure": "public",
        "clearance": {"scopes": {"hr:read": "confidential", "kb:read": "internal"}},
        "resources": {
            "docs://public/{name}": {"data": "public", "untrusted_output": False},
            "docs://public/secret": {"scopes": ["hr:read"], "data": "confidential"},
            "docs://{area}/{name}": {"scopes": ["kb:read"], "data": "internal"},
            "file:///kb/{+path}": {"scopes": ["kb:read"], "data": "internal"},
            "logs://{service}{?since,level}": {"scopes": ["ops:read"]},
            "docs://off/x": {"data": "public", "enabled": False},
        },
        "prompts": {
            "summarise": {"data": "public"},
            "incident": {"scopes": ["incidents:write"], "data": "internal"},
        },
    }
)

USER = Principal(subject="ann", authenticated=True, scopes=frozenset({"kb:read"}))
HR = Principal(
    subject="hr", authenticated=True, scopes=frozenset({"hr:read", "kb:read"})
)


def _guard() -> tuple[Guard, MemorySink]:
    memory = MemorySink()
    return Guard(POLICY, sinks=[memory]), memory


def _code(uri: str, who: Principal) -> str:
    guard, _ = _guard()
    try:
        check_resource(guard, uri, principal=who)
    except (AccessDenied, AuthenticationRequired, ScopeDenied) as exc:
        return exc.code
    return "allowed"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("DOCS://Public/a", "docs://public/a"),
        ("docs://public/%61", "docs://public/a"),
        ("docs://public/a%2fb", "docs://public/a%2Fb"),
        ("file:///kb/A", "file:///kb/A"),
        ("urn:x:%7Ey", "urn:x:~y"),
        ("docs://public/a?x=%41", "docs://public/a?x=A"),
    ],
)
def test_canonical_form(raw: str, canonical: str) -> None:
    assert canonical_uri(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "docs://public/../secret",
        "docs://public/./a",
        "docs://public/%2E%2E/secret",
        "docs://public/a//b",
        "docs://public/a#frag",
        "docs://user@public/a",
        "docs://public/{name}",
        "docs://public/a b",
        "docs://public/a\\b",
        "docs://public/\u00e9",
        "docs://public/%zz",
        "docs://public/%00",
        "no-scheme",
        "",
    ],
)
def test_refused_uris(raw: str) -> None:
    with pytest.raises(ResourceURIError):
        canonical_uri(raw)
    assert _code(raw, HR) == "resource_uri_invalid"


def test_exact_key_before_template() -> None:
    # docs://public/{name} is public, but the exact key needs hr:read.
    assert _code("docs://public/readme", ANONYMOUS) == "allowed"
    assert _code("docs://public/secret", ANONYMOUS) == "authentication_required"
    assert _code("docs://public/secret", USER) == "scope_missing"
    assert _code("docs://public/secret", HR) == "allowed"
    # Other spellings of the exact key meet the exact key.
    for spelled in ("DOCS://PUBLIC/secret", "docs://public/%73ecret"):
        assert _code(spelled, USER) == "scope_missing"


def test_most_specific_template_wins() -> None:
    # docs://public/{name} (15 literal chars) beats docs://{area}/{name}.
    assert _code("docs://public/faq", ANONYMOUS) == "allowed"
    assert _code("docs://hr/faq", ANONYMOUS) == "authentication_required"
    assert _code("docs://hr/faq", USER) == "allowed"


def test_equally_specific_templates_are_all_applied() -> None:
    policy = Policy.from_dict(
        {
            "exposure": "public",
            "resources": {
                "x://a/{p}": {"scopes": ["one"], "data": "public"},
                "x://{q}/b": {"scopes": ["two"], "data": "public"},
            },
        }
    )
    guard = Guard(policy)
    one = Principal(subject="u", authenticated=True, scopes=frozenset({"one"}))
    with pytest.raises(ScopeDenied) as info:
        check_resource(guard, "x://a/b", principal=one)
    assert info.value.missing == ("two",)


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("docs://public/a%2Fb", "resource_uri_invalid"),
        ("docs://public/%2E%2E", "resource_uri_invalid"),
        ("file:///kb/a/b", "allowed"),
        ("file:///kb/a/%2E%2E/b", "resource_uri_invalid"),
        ("file:///kb/a%2F..%2Fb", "resource_uri_invalid"),
        ("file:///kb/a%5Cb", "resource_uri_invalid"),
        ("file:///kb/", "resource_unknown"),
        ("docs://public/", "resource_unknown"),
        ("docs://public/a/", "resource_unknown"),
        ("docs://public/a/b", "resource_unknown"),
        ("logs://api", "scope_missing"),
        ("logs://api?level=error", "scope_missing"),
        ("docs://off/x", "resource_disabled"),
        ("other://x", "resource_unknown"),
    ],
)
def test_template_variables(uri: str, code: str) -> None:
    assert _code(uri, USER) == code


def test_denials_name_the_key_never_the_uri() -> None:
    guard, memory = _guard()
    uri = "docs://hr/tok_live_ABCDEF0123456789"
    with pytest.raises(AuthenticationRequired) as info:
        check_resource(guard, uri, principal=ANONYMOUS)
    assert "tok_live" not in str(info.value)
    assert info.value.resource == "resource.docs://{area}/{name}"
    assert all("tok_live" not in repr(e) for e in memory.events)
    with pytest.raises(AccessDenied) as unknown:
        check_resource(guard, "zz://tok_live_ABCDEF0123456789", principal=HR)
    assert "tok_live" not in str(unknown.value)
    assert all("tok_live" not in repr(e) for e in memory.events)


def test_dry_run_records_nothing() -> None:
    guard, memory = _guard()
    before = len(memory.events)
    with pytest.raises(ScopeDenied):
        check_resource(guard, "docs://public/secret", principal=USER, record=False)
    assert len(memory.events) == before


def test_allowed_read_marks_the_run() -> None:
    guard, _ = _guard()
    with acting_as(USER), agent_run() as run:
        check_resource(guard, "docs://public/faq")  # declared trusted, public
        assert not run.untrusted_sources
        assert not run.private_sources
        check_resource(guard, "docs://hr/faq")
        assert run.untrusted_sources
        assert run.private_sources


def test_prompts() -> None:
    guard, _ = _guard()
    assert guard.check_prompt("summarise", principal=ANONYMOUS) is ANONYMOUS
    with pytest.raises(ScopeDenied) as info:
        guard.check_prompt("incident", principal=USER, arguments={"x": "1"})
    assert info.value.required == ("incidents:write",)
    assert "scope=" in info.value.www_authenticate
    with pytest.raises(AccessDenied) as unknown:
        check_prompt(guard, "nope", principal=HR)
    assert unknown.value.code == "prompt_unknown"


def test_guard_delegation_and_code_spec() -> None:
    guard, _ = _guard()
    assert guard.check_resource("docs://hr/x", principal=USER) is USER
    spec = resource_spec("docs://{area}/{name}", scopes=["extra"])
    with pytest.raises(ScopeDenied) as info:
        check_resource(guard, "docs://hr/x", spec=spec, principal=USER)
    assert "extra" in info.value.missing
    # A spec alone declares an otherwise unknown resource; it cannot weaken.
    spec_only = resource_spec("mem://x", data="public", exposure="public")
    assert check_resource(guard, "mem://x", spec=spec_only, principal=ANONYMOUS)


def test_internal_exposure_refuses_anonymous() -> None:
    guard = Guard(Policy.from_dict({"resources": {"docs://a": {"data": "public"}}}))
    with pytest.raises(AuthenticationRequired):
        check_resource(guard, "docs://a", principal=ANONYMOUS)


def test_result_ceiling() -> None:
    guard, memory = _guard()
    spec = resource_spec("docs://public/{name}")

    def read(name: str) -> dict[str, object]:
        return {"text": "x", "metadata": {"classification": "confidential"}}

    with pytest.raises(AccessDenied) as info:
        capped_resource(guard, spec, read)("a")
    assert info.value.code == "mislabelled_source"
    assert memory.events[-1].reason == "mislabelled_source"


def test_policy_keys_validated() -> None:
    for key in (
        "docs://{a}{b}",
        "docs://x/{+a}/{+b}",
        "docs://x/{#a}",
        "docs://x/{a",
        "{a}://x",
        "docs://x/../{a}",
        "docs://x/{a}#f",
    ):
        with pytest.raises(PolicyError):
            Policy.from_dict({"resources": {key: {"data": "public"}}})
        with pytest.raises(ResourceURIError):
            parse_key(key)
    with pytest.raises(PolicyError) as dup:
        Policy.from_dict({"resources": {"DOCS://a/x": {}, "docs://a/%78": {}}})
    assert "same resource" in str(dup.value.errors)
    with pytest.raises(PolicyError):
        Policy.from_dict({"resources": {"docs://a": {"data": "secret"}}})


def test_scopes_supported() -> None:
    assert scopes_supported(POLICY) == (
        "hr:read",
        "incidents:write",
        "kb:read",
        "ops:read",
    )
    assert Policy().scopes_supported == ()


def test_codes_are_stable() -> None:
    assert set(RESOURCE_CODES) >= {
        "resource_unknown",
        "prompt_unknown",
        "resource_uri_invalid",
        "mislabelled_source",
    }
