"""The Policy model: strict defaults, validation, labels, clearance and the hash."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import pickle
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aiinvariants._errors import PolicyError
from aiinvariants.policy import (
    CONSEQUENTIAL,
    DEFAULT_CLASSIFICATIONS,
    Approval,
    AuditPolicy,
    AzureContentSafetyConfig,
    BedrockGuardrailsConfig,
    ClearancePolicy,
    IdentityPolicy,
    JsonlSinkConfig,
    LoggingSinkConfig,
    MemorySinkConfig,
    OpenAICompatibleConfig,
    OpenAIModerationConfig,
    OtelSinkConfig,
    Policy,
    ToolPolicy,
    UseCase,
)
from secret_graph import assert_no_secret_reachable

SECRET = "sk-live-51HxQpA9zZ0SECRETvalue0123456789"
HASH = re.compile(r"sha256:[0-9a-f]{64}")
IDENTITY: dict[str, Any] = {
    "issuer": "https://login.example.com",
    "audience": "https://support.example.com/api",
    "jwks_uri": "https://login.example.com/.well-known/jwks.json",
    "algorithms": ["RS256"],
}
RSA_JWK = {
    "kty": "RSA",
    "kid": "k1",
    "use": "sig",
    "alg": "RS256",
    "n": "AQAB",
    "e": "AQAB",
}


def problems(data: dict[str, Any]) -> dict[str, str]:
    """The field path -> message map of the PolicyError ``data`` raises."""
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data)
    assert info.value.errors, "a validation PolicyError lists its problems"
    return dict(info.value.errors)


def identity(**changes: Any) -> dict[str, Any]:
    return {"identity": {**IDENTITY, **changes}}


# -- Policy() is valid and strict ------------------------------------------------------


def test_default_policy_is_strict() -> None:
    policy = Policy()
    assert policy.version == 1
    assert policy.app == "app"
    assert policy.exposure == "internal"
    assert policy.classifications == DEFAULT_CLASSIFICATIONS
    assert policy.classifications == (
        "public",
        "internal",
        "confidential",
        "restricted",
    )
    assert policy.public_label == "public"
    assert policy.highest_label == "restricted"
    assert policy.identity is None
    assert policy.clearance.groups == {}
    assert policy.clearance.scopes == {}
    assert policy.clearance.default_authenticated == "public"
    assert policy.models.allow == ("*",)
    assert policy.models.deny == ()
    assert policy.regions.allow is None
    assert policy.regions.declared == {}
    assert policy.data_use.require_opt_out is True
    assert policy.capabilities.forbidden == ("life_safety",)
    assert policy.capabilities.confirm == CONSEQUENTIAL
    assert "sends_external" in policy.capabilities.confirm
    assert policy.capabilities.confirm_when == "untrusted"
    assert policy.capabilities.injected == "refuse"
    assert policy.tools == {}
    assert policy.use_cases == {}
    assert policy.audit.sinks == ()
    assert policy.audit.on_write_failure == "deny"
    assert policy.insecure_settings() == ()


def test_every_output_filter_is_on_by_default() -> None:
    outputs = Policy().outputs
    assert (outputs.secrets.enabled, outputs.secrets.action) == (True, "block")
    assert outputs.secrets.registered_env == ()
    assert (outputs.system_prompt.enabled, outputs.system_prompt.action) == (
        True,
        "block",
    )
    assert outputs.system_prompt.threshold == 0.6
    assert outputs.system_prompt.canary
    assert (outputs.tool_outputs.enabled, outputs.tool_outputs.action) == (
        True,
        "block",
    )
    assert outputs.tool_outputs.min_overlap_chars == 40
    assert (outputs.competitors.enabled, outputs.competitors.action) == (True, "block")
    assert (outputs.pii.enabled, outputs.pii.action) == (True, "redact")
    assert outputs.pii.kinds == (
        "email",
        "phone",
        "payment_card",
        "iban",
        "national_id",
    )
    assert outputs.classifiers == ()


def test_tool_defaults_fail_closed() -> None:
    tool = ToolPolicy()
    assert tool.scopes == ()
    assert tool.any_scopes == ()
    assert tool.data is None  # undeclared: treated as the highest label
    assert tool.enabled
    assert tool.untrusted_output
    assert not tool.confidential_output
    assert tool.exposure is None
    assert tool.capabilities == ()


# -- immutability ----------------------------------------------------------------------


def test_policy_and_its_mappings_are_immutable() -> None:
    policy = Policy.from_dict(
        {"clearance": {"groups": {"finance": "confidential"}}, "tools": {"t": {}}}
    )
    with pytest.raises(ValidationError):
        policy.app = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        policy.clearance.default_authenticated = "restricted"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.clearance.groups["everyone"] = "restricted"
    with pytest.raises(TypeError):
        policy.tools.pop("t")
    with pytest.raises(TypeError):
        policy.tools.update({"x": ToolPolicy()})
    assert isinstance(policy.tools, dict)
    assert hash(policy) == hash(Policy.from_dict(policy.model_dump()))


def test_copies_and_pickles_are_equal_with_the_same_hash() -> None:
    policy = Policy.from_dict(
        {"app": "crm", "clearance": {"groups": {"a": "internal"}}}
    )
    for other in (
        copy.copy(policy),
        copy.deepcopy(policy),
        pickle.loads(pickle.dumps(policy)),  # noqa: S301 - our own data
        policy.model_copy(),
    ):
        assert other == policy
        assert other.hash == policy.hash
        assert other.clearance.resolve(authenticated=True, groups=["a"]) == "internal"


def test_model_copy_with_update_is_validated_and_rehashed() -> None:
    policy = Policy()
    _ = policy.hash
    public = policy.model_copy(update={"exposure": "public"})
    assert public.exposure == "public"
    assert public.hash != policy.hash
    assert public.hash == Policy(exposure="public").hash
    with pytest.raises(PolicyError) as info:
        policy.model_copy(update={"exposure": "everyone"})
    assert [path for path, _ in info.value.errors] == ["exposure"]


# -- the hash --------------------------------------------------------------------------


def test_hash_is_sha256_of_the_canonical_json() -> None:
    policy = Policy()
    assert HASH.fullmatch(policy.hash)
    canonical = json.dumps(
        policy.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert policy.canonical_json() == canonical
    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert policy.hash == f"sha256:{expected}"


def test_hash_is_cached() -> None:
    policy = Policy()
    assert policy.hash is policy.hash


def test_spelled_out_defaults_hash_like_omitted_ones() -> None:
    explicit = json.loads(Policy().canonical_json())
    assert Policy.from_dict(explicit).hash == Policy().hash
    assert Policy.from_dict({}).hash == Policy().hash
    assert Policy.from_dict({"outputs": {"pii": {"action": "redact"}}}).hash == (
        Policy().hash
    )


def test_numbers_hash_by_value_not_spelling() -> None:
    one = Policy.from_dict({"outputs": {"system_prompt": {"threshold": 1}}})
    one_point_oh = Policy.from_dict({"outputs": {"system_prompt": {"threshold": 1.0}}})
    assert one.hash == one_point_oh.hash


def test_non_ascii_content_hashes_as_utf8() -> None:
    policy = Policy.from_dict(
        {"app": "assistant-ü", "outputs": {"competitors": {"names": ["Ångström AB"]}}}
    )
    assert "Ångström AB" in policy.canonical_json()
    digest = hashlib.sha256(policy.canonical_json().encode("utf-8")).hexdigest()
    assert policy.hash == f"sha256:{digest}"


APP = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,30}[A-Za-z0-9]", fullmatch=True)
VARIANTS = st.fixed_dictionaries(
    {
        "app": APP,
        "exposure": st.sampled_from(["public", "internal"]),
        "leeway_s": st.integers(0, 60),
        "threshold": st.floats(0.01, 1.0, allow_nan=False),
        "deny": st.lists(
            st.from_regex(r"[a-z0-9*.-]{1,12}", fullmatch=True), max_size=3
        ),
        "data": st.sampled_from([None, *DEFAULT_CLASSIFICATIONS]),
    }
)


def build(variant: dict[str, Any]) -> Policy:
    return Policy.from_dict(
        {
            "app": variant["app"],
            "exposure": variant["exposure"],
            "identity": {**IDENTITY, "leeway_s": variant["leeway_s"]},
            "outputs": {"system_prompt": {"threshold": variant["threshold"]}},
            "models": {"deny": variant["deny"]},
            "tools": {"lookup": {"data": variant["data"]}},
        }
    )


@settings(max_examples=150, deadline=None)
@given(VARIANTS, VARIANTS)
def test_hash_changes_exactly_when_content_changes(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    first, second = build(a), build(b)
    assert (first.hash == second.hash) == (first == second)
    assert (first.hash == second.hash) == (
        first.canonical_json() == second.canonical_json()
    )


@settings(max_examples=50, deadline=None)
@given(VARIANTS, st.sampled_from(["app", "exposure", "leeway_s", "threshold", "data"]))
def test_any_single_change_changes_the_hash(
    variant: dict[str, Any], field: str
) -> None:
    changed = dict(variant)
    changed[field] = {
        "app": variant["app"] + "x",
        "exposure": "internal" if variant["exposure"] == "public" else "public",
        "leeway_s": (variant["leeway_s"] + 1) % 61,
        "threshold": 0.5 if variant["threshold"] != 0.5 else 0.25,
        "data": "public" if variant["data"] != "public" else "restricted",
    }[field]
    assert build(variant).hash != build(changed).hash


# -- classifications and labels --------------------------------------------------------


@pytest.mark.parametrize(
    ("classifications", "message"),
    [
        ([], "at least one"),
        (["internal", "public"], "must be 'public'"),
        (["public", "internal", "internal"], "repeats"),
        (["public", "Top Secret"], "lower-case identifier"),
    ],
)
def test_classifications_are_validated(
    classifications: list[str], message: str
) -> None:
    found = problems({"classifications": classifications})
    assert any(message in text for text in found.values()), found
    assert all(path.startswith("classifications") for path in found)


def test_every_unknown_label_is_reported_at_once() -> None:
    found = problems(
        {
            "clearance": {
                "groups": {"finance": "secret"},
                "scopes": {"hr:read": "top"},
                "default_authenticated": "cosmic",
            },
            "tools": {"refund": {"data": "classified"}, "ok": {"data": "internal"}},
            "exposre": "public",
        }
    )
    assert set(found) == {
        "clearance.groups.finance",
        "clearance.scopes.hr:read",
        "clearance.default_authenticated",
        "tools.refund.data",
        "exposre",
    }
    assert "public, internal, confidential, restricted" in found["tools.refund.data"]


def test_rank_and_labels_follow_the_policy_order() -> None:
    policy = Policy(classifications=("public", "secret", "internal"))
    assert [policy.rank(label) for label in ("public", "secret", "internal")] == [
        0,
        1,
        2,
    ]
    assert policy.highest_label == "internal"
    with pytest.raises(PolicyError, match="unknown classification label"):
        policy.rank("confidential")
    with pytest.raises(PolicyError) as info:
        policy.rank(SECRET)
    assert SECRET not in str(info.value)


# -- clearance -------------------------------------------------------------------------


def test_clearance_resolves_to_the_highest_mapped_label() -> None:
    clearance = Policy.from_dict(
        {
            "clearance": {
                "groups": {"employees": "internal", "finance": "confidential"},
                "scopes": {"hr:read": "restricted"},
                "default_authenticated": "internal",
            }
        }
    ).clearance
    resolve = clearance.resolve
    assert resolve(authenticated=True, groups=[], scopes=[]) == "internal"
    assert (
        resolve(authenticated=True, groups=["finance", "employees"]) == "confidential"
    )
    assert resolve(authenticated=True, groups=["unknown"]) == "internal"
    assert resolve(authenticated=True, scopes="openid hr:read") == "restricted"
    # No verified identity, no authority, whatever is claimed.
    assert resolve(authenticated=False, groups=["finance"], scopes=["hr:read"]) == (
        "public"
    )
    with pytest.raises(PolicyError):
        resolve(authenticated=True, groups="finance")


def test_clearance_uses_the_order_of_its_policy() -> None:
    shared = ClearancePolicy(groups={"a": "beta", "b": "alpha"})
    first = Policy(classifications=("public", "alpha", "beta"), clearance=shared)
    second = Policy(classifications=("public", "beta", "alpha"), clearance=shared)
    assert first.clearance.resolve(authenticated=True, groups=["a", "b"]) == "beta"
    assert second.clearance.resolve(authenticated=True, groups=["a", "b"]) == "alpha"
    assert first.clearance == shared == second.clearance


def test_an_unbound_clearance_uses_the_default_order() -> None:
    clearance = ClearancePolicy(groups={"a": "confidential", "b": "internal"})
    assert clearance.resolve(authenticated=True, groups=["a", "b"]) == "confidential"
    with pytest.raises(PolicyError):
        ClearancePolicy(groups={"a": "beta"}).resolve(authenticated=True, groups=["a"])


# -- identity --------------------------------------------------------------------------


def test_identity_minimal_and_defaults() -> None:
    policy = Policy.from_dict(identity())
    assert policy.identity is not None
    ident = policy.identity
    assert ident.algorithms == ("RS256",)
    assert (ident.leeway_s, ident.require_typ, ident.max_token_bytes) == (
        30,
        True,
        8192,
    )
    assert ident.scope_claims == ("scope", "scp")
    assert ident.groups_claims == ("groups", "roles")
    assert ident.tenant_claim == "tid"
    several = Policy.from_dict(identity(audience=["a", "b"])).identity
    assert several is not None
    assert several.audience == ("a", "b")


def test_identity_requires_the_trust_parameters() -> None:
    found = problems({"identity": {"jwks_uri": IDENTITY["jwks_uri"]}})
    assert {"identity.issuer", "identity.audience", "identity.algorithms"} <= set(found)
    with pytest.raises(ValidationError):
        IdentityPolicy(
            issuer="https://x.example", audience="a", jwks_uri="https://x.example/k"
        )  # type: ignore[call-arg]


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "HS384", "HS512", "hs256"])
def test_none_and_hmac_algorithms_are_refused(alg: str) -> None:
    found = problems(identity(algorithms=["RS256", alg]))
    assert list(found) == ["identity.algorithms.1"]
    assert "RFC 8725" in found["identity.algorithms.1"]


@pytest.mark.parametrize(
    ("algorithms", "path"),
    [
        ([], "identity.algorithms"),
        (["RS256", "RS256"], "identity.algorithms.1"),
        (["RSA-OAEP"], "identity.algorithms.0"),
        ("RS256", "identity.algorithms"),
    ],
)
def test_algorithms_are_a_non_empty_unique_list(algorithms: Any, path: str) -> None:
    assert path in problems(identity(algorithms=algorithms))


@pytest.mark.parametrize("leeway", [-1, 61, 120])
def test_leeway_is_bounded(leeway: int) -> None:
    assert "identity.leeway_s" in problems(identity(leeway_s=leeway))


@pytest.mark.parametrize(
    "issuer",
    [
        "http://login.example.com",
        "login.example.com",
        "ftp://login.example.com",
        "https://login.example.com/?tenant=1",
        "https://login.example.com/#x",
        "https://user:pw@login.example.com",
        "https://",
    ],
)
def test_issuer_must_be_https(issuer: str) -> None:
    assert "identity.issuer" in problems(identity(issuer=issuer))


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/realms/x", "http://127.0.0.1:9000", "http://[::1]/"]
)
def test_plain_http_only_on_loopback(url: str) -> None:
    policy = Policy.from_dict(identity(issuer=url, jwks_uri=url + "/jwks"))
    assert policy.identity is not None
    assert policy.identity.issuer == url


def test_issuer_is_kept_exactly() -> None:
    issuer = "https://login.example.com/tenant/v2.0/"
    assert Policy.from_dict(identity(issuer=issuer)).identity.issuer == issuer  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "sources",
    [
        {},
        {"jwks": {"keys": [RSA_JWK]}},
        {"introspection_endpoint": "https://login.example.com/introspect"},
    ],
)
def test_exactly_one_key_source(sources: dict[str, Any]) -> None:
    data = {key: value for key, value in IDENTITY.items() if key != "jwks_uri"}
    if not sources:
        assert "identity" in problems({"identity": data})
        return
    assert Policy.from_dict({"identity": {**data, **sources}}).identity is not None
    found = problems({"identity": {**IDENTITY, **sources}})
    assert "exactly one" in found["identity"]


def test_inline_jwks_is_frozen_public_keys_only() -> None:
    policy = Policy.from_dict(
        {"identity": {**IDENTITY, "jwks_uri": None, "jwks": {"keys": [RSA_JWK]}}}
    )
    assert policy.identity is not None
    assert policy.identity.jwks is not None
    keys = policy.identity.jwks["keys"]
    assert keys[0]["kid"] == "k1"
    with pytest.raises(TypeError):
        keys[0]["kid"] = "k2"
    assert HASH.fullmatch(policy.hash)


@pytest.mark.parametrize(
    ("jwks", "path"),
    [
        ({"keys": []}, "identity.jwks.keys"),
        ({}, "identity.jwks"),
        ({"keys": [{**RSA_JWK, "d": SECRET}]}, "identity.jwks.keys.0"),
        ({"keys": [{"kty": "oct", "k": SECRET}]}, "identity.jwks.keys.0"),
        ({"keys": [RSA_JWK, {"kty": "XYZ"}]}, "identity.jwks.keys.1"),
        ({"keys": [RSA_JWK], "extra": 1}, "identity.jwks"),
    ],
)
def test_inline_jwks_refuses_private_and_malformed_keys(
    jwks: dict[str, Any], path: str
) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"identity": {**IDENTITY, "jwks_uri": None, "jwks": jwks}})
    assert path in dict(info.value.errors)
    assert SECRET not in str(info.value)


def test_introspection_client_needs_the_endpoint() -> None:
    found = problems(identity(introspection_client_secret_env="CLIENT_SECRET"))
    assert "identity" in found
    ok = {key: value for key, value in IDENTITY.items() if key != "jwks_uri"}
    policy = Policy.from_dict(
        {
            "identity": {
                **ok,
                "introspection_endpoint": "https://login.example.com/introspect",
                "introspection_client_id": "support-api",
                "introspection_client_secret_env": "INTROSPECTION_SECRET",
            }
        }
    )
    assert policy.identity is not None


# -- tools, capabilities, names --------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("*", "wildcard"),
        ("tickets:*", "wildcard"),
        ("tickets read", "RFC 6749"),
        ('tickets"', "RFC 6749"),
        ("", "RFC 6749"),
    ],
)
def test_tool_scopes_are_rfc6749_tokens_without_wildcards(
    scope: str, message: str
) -> None:
    for field in ("scopes", "any_scopes"):
        found = problems({"tools": {"t": {field: ["ok:read", scope]}}})
        assert message in found[f"tools.t.{field}.1"]


def test_a_tool_with_a_forbidden_capability_still_loads() -> None:
    policy = Policy.from_dict(
        {"tools": {"open_floodgate": {"capabilities": ["life_safety"]}}}
    )
    assert policy.tools["open_floodgate"].capabilities == ("life_safety",)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"tools": {"bad name": {}}}, "tools.<invalid key>.[key]"),
        ({"tools": {"": {}}}, 'tools."".[key]'),
        ({"tools": {"t": {"scopez": []}}}, "tools.t.scopez"),
        (
            {"tools": {"t": {"capabilities": ["Sends External"]}}},
            "tools.t.capabilities.0",
        ),
        ({"capabilities": {"forbidden": [""]}}, "capabilities.forbidden.0"),
        ({"use_cases": {"-x": {}}}, "use_cases.<invalid key>.[key]"),
        ({"app": ""}, "app"),
        ({"app": "bad\napp"}, "app"),
        ({"tools": {"t": {"exposure": "everyone"}}}, "tools.t.exposure"),
    ],
)
def test_names_and_identifiers_are_checked(data: dict[str, Any], path: str) -> None:
    assert path in problems(data)


def test_model_and_region_patterns_are_lower_cased() -> None:
    policy = Policy.from_dict(
        {
            "models": {"allow": ["GPT-4.1*"], "deny": ["*DeepSeek*"]},
            "regions": {
                "allow": ["EU-*"],
                "declared": {"https://x.openai.azure.com": "SwedenCentral"},
            },
        }
    )
    assert policy.models.allow == ("gpt-4.1*",)
    assert policy.models.deny == ("*deepseek*",)
    assert policy.regions.allow == ("eu-*",)
    assert policy.regions.declared == {"https://x.openai.azure.com": "swedencentral"}
    assert "models.deny.0" in problems({"models": {"deny": ["deep seek"]}})
    found = problems({"regions": {"declared": {"http://x.example": "eu-west-1"}}})
    assert list(found) == ["regions.declared.<invalid key>.[key]"]


# -- outputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, -0.1, 1.01, float("nan"), float("inf")])
def test_system_prompt_threshold_is_in_zero_one(threshold: float) -> None:
    found = problems({"outputs": {"system_prompt": {"threshold": threshold}}})
    assert "outputs.system_prompt.threshold" in found


def test_registered_secrets_are_env_var_names_never_values() -> None:
    ok = Policy.from_dict({"outputs": {"secrets": {"registered_env": ["STRIPE_KEY"]}}})
    assert ok.outputs.secrets.registered_env == ("STRIPE_KEY",)
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(
            {"outputs": {"secrets": {"registered_env": ["STRIPE_KEY", SECRET]}}}
        )
    assert "outputs.secrets.registered_env.1" in dict(info.value.errors)
    assert SECRET not in str(info.value)


def test_competitor_aliases_must_name_a_competitor() -> None:
    found = problems(
        {
            "outputs": {
                "competitors": {"names": ["Globex"], "aliases": {"Initech": ["Inny"]}}
            }
        }
    )
    assert "outputs.competitors.aliases.Initech" in found
    policy = Policy.from_dict(
        {
            "outputs": {
                "competitors": {"names": ["Globex"], "aliases": {"Globex": ["GBX"]}}
            }
        }
    )
    assert policy.outputs.competitors.aliases == {"Globex": ("GBX",)}


def test_every_classifier_kind() -> None:
    classifiers = [
        {
            "kind": "bedrock_guardrails",
            "guardrail_id": "gr-123",
            "region": "eu-central-1",
        },
        {
            "kind": "azure_content_safety",
            "endpoint": "https://cs.cognitiveservices.azure.com",
        },
        {"kind": "openai_moderation", "api_key_env": "OPENAI_API_KEY"},
        {
            "kind": "openai_compatible",
            "base_url": "http://localhost:8000/v1",
            "model": "llama-guard-3",
        },
    ]
    policy = Policy.from_dict({"outputs": {"classifiers": classifiers}})
    bedrock, azure, moderation, compatible = policy.outputs.classifiers
    assert isinstance(bedrock, BedrockGuardrailsConfig)
    assert bedrock.guardrail_version == "DRAFT"
    assert isinstance(azure, AzureContentSafetyConfig)
    assert azure.categories == ("Hate", "SelfHarm", "Sexual", "Violence")
    assert isinstance(moderation, OpenAIModerationConfig)
    assert moderation.model == "omni-moderation-latest"
    assert isinstance(compatible, OpenAICompatibleConfig)
    assert all(
        c.fail == "closed" and c.timeout_s == 5.0 for c in policy.outputs.classifiers
    )


@pytest.mark.parametrize(
    ("classifier", "path"),
    [
        ({"kind": "perspective"}, "outputs.classifiers.0"),
        ({"guardrail_id": "gr-1"}, "outputs.classifiers.0"),
        (
            {"kind": "bedrock_guardrails", "guardrail_id": "gr-1"},
            "outputs.classifiers.0.region",
        ),
        (
            {
                "kind": "bedrock_guardrails",
                "guardrail_id": "g",
                "region": "eu-central-1",
                "guardrail_version": "latest",
            },
            "outputs.classifiers.0.guardrail_version",
        ),
        (
            {"kind": "azure_content_safety", "endpoint": "http://cs.example.com"},
            "outputs.classifiers.0.endpoint",
        ),
        (
            {
                "kind": "azure_content_safety",
                "endpoint": "https://cs.example.com",
                "categories": [],
            },
            "outputs.classifiers.0.categories",
        ),
        ({"kind": "openai_moderation", "fail": "maybe"}, "outputs.classifiers.0.fail"),
        (
            {"kind": "openai_moderation", "timeout_s": 0},
            "outputs.classifiers.0.timeout_s",
        ),
        (
            {"kind": "openai_moderation", "api_key_env": SECRET},
            "outputs.classifiers.0.api_key_env",
        ),
    ],
)
def test_classifier_errors(classifier: dict[str, Any], path: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"outputs": {"classifiers": [classifier]}})
    assert path in dict(info.value.errors), info.value.errors
    assert SECRET not in str(info.value)


# -- use cases -------------------------------------------------------------------------


def test_use_case_approval() -> None:
    policy = Policy.from_dict(
        {
            "use_cases": {
                "credit_scoring": {
                    "high_risk": "essential_services",
                    "approval": {
                        "by": "legal@example.com",
                        "reference": "LEG-1",
                        "expires": "2027-06-30",
                    },
                },
                "faq": {"description": "answers questions"},
            }
        }
    )
    scoring = policy.use_cases["credit_scoring"]
    assert scoring.approval == Approval(
        by="legal@example.com", reference="LEG-1", expires=datetime.date(2027, 6, 30)
    )
    assert scoring.is_approved_on(datetime.date(2027, 6, 30))
    assert not scoring.is_approved_on(datetime.date(2027, 7, 1))
    assert policy.use_cases["faq"].is_approved_on(datetime.date(2099, 1, 1))
    assert not UseCase(high_risk="employment").is_approved_on(datetime.date(2020, 1, 1))


def test_an_expired_approval_still_loads() -> None:
    data = {
        "high_risk": "employment",
        "approval": {"by": "a@example.com", "reference": "R", "expires": "2000-01-01"},
    }
    assert (
        Policy.from_dict({"use_cases": {"hiring": data}}).use_cases["hiring"].approval
    )


@pytest.mark.parametrize(
    ("use_case", "path"),
    [
        ({"high_risk": "credit"}, "use_cases.u.high_risk"),
        (
            {"approval": {"by": "legal", "reference": "R", "expires": "2027-01-01"}},
            "use_cases.u.approval.by",
        ),
        (
            {
                "approval": {
                    "by": "a@example.com",
                    "reference": "",
                    "expires": "2027-01-01",
                }
            },
            "use_cases.u.approval.reference",
        ),
        (
            {
                "approval": {
                    "by": "a@example.com",
                    "reference": "R",
                    "expires": "someday",
                }
            },
            "use_cases.u.approval.expires",
        ),
        (
            {"approval": {"by": "a@example.com", "reference": "R"}},
            "use_cases.u.approval.expires",
        ),
    ],
)
def test_use_case_errors(use_case: dict[str, Any], path: str) -> None:
    assert path in problems({"use_cases": {"u": use_case}})


# -- audit -----------------------------------------------------------------------------


def test_every_sink_kind() -> None:
    policy = Policy.from_dict(
        {
            "audit": {
                "sinks": [
                    {"kind": "memory"},
                    {"kind": "logging", "level": "WARNING", "timeout_s": 0.05},
                    {
                        "kind": "jsonl",
                        "path": "audit.jsonl",
                        "sign_key_env": "AUDIT_KEY",
                    },
                    {"kind": "otel"},
                ],
                "on_write_failure": "deny",
            }
        }
    )
    memory, logging_, jsonl, otel = policy.audit.sinks
    assert isinstance(memory, MemorySinkConfig)
    assert memory.capacity == 10_000
    assert isinstance(logging_, LoggingSinkConfig)
    assert (logging_.logger, logging_.level, logging_.timeout_s) == (
        "aiinvariants.audit",
        "WARNING",
        0.05,
    )
    assert isinstance(jsonl, JsonlSinkConfig)
    assert (jsonl.path, jsonl.sign_key_env, jsonl.fsync) == (
        "audit.jsonl",
        "AUDIT_KEY",
        False,
    )
    assert isinstance(otel, OtelSinkConfig)
    assert otel.timeout_s is None
    assert (
        Policy(audit=AuditPolicy(sinks=(MemorySinkConfig(capacity=None),)))
        .audit.sinks[0]
        .kind
        == "memory"
    )


@pytest.mark.parametrize(
    ("sink", "path"),
    [
        ({"kind": "kafka"}, "audit.sinks.0"),
        ({"kind": "jsonl"}, "audit.sinks.0.path"),
        (
            {"kind": "jsonl", "path": "a.jsonl", "sign_key_env": SECRET},
            "audit.sinks.0.sign_key_env",
        ),
        ({"kind": "memory", "capacity": 0}, "audit.sinks.0.capacity"),
        ({"kind": "otel", "timeout_s": 0}, "audit.sinks.0.timeout_s"),
        ({"kind": "otel", "timeout_s": 61}, "audit.sinks.0.timeout_s"),
        ({"kind": "otel", "timeout_ms": 0}, "audit.sinks.0"),
        ({"kind": "otel", "endpoint": "x"}, "audit.sinks.0.endpoint"),
        ({"kind": "logging", "level": "TRACE"}, "audit.sinks.0.level"),
        ({"kind": "logging", "logger": "not a logger"}, "audit.sinks.0.logger"),
    ],
)
def test_sink_errors(sink: dict[str, Any], path: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"audit": {"sinks": [sink]}})
    assert path in dict(info.value.errors), info.value.errors
    assert SECRET not in str(info.value)


# -- weakened settings -----------------------------------------------------------------


def test_insecure_settings_are_listed() -> None:
    policy = Policy.from_dict(
        {
            "identity": {**IDENTITY, "require_typ": False},
            "capabilities": {"forbidden": []},
            "data_use": {"require_opt_out": False},
            "outputs": {
                "secrets": {"enabled": False},
                "system_prompt": {"action": "flag"},
                "pii": {"enabled": False},
                "classifiers": [{"kind": "openai_moderation", "fail": "open"}],
            },
            "audit": {"on_write_failure": "fail_open"},
        }
    )
    assert policy.insecure_settings() == (
        "identity.require_typ",
        "capabilities.forbidden",
        "data_use.require_opt_out",
        "outputs.secrets.enabled",
        "outputs.system_prompt.action",
        "outputs.pii.enabled",
        "outputs.classifiers.0.fail",
        "audit.on_write_failure",
    )


# -- errors ----------------------------------------------------------------------------


def test_from_dict_names_the_source_and_chains_nothing() -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"exposure": "everyone"}, source="inline")
    error = info.value
    assert error.file == "inline"
    assert error.errors == (("exposure", "Input should be 'public' or 'internal'"),)
    assert str(error).startswith("inline: invalid policy (1 problem)")
    # pydantic's error is not chained: it names mapping keys (see below).
    assert error.__cause__ is None
    assert error.__context__ is None
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("data", [[1, 2], "version: 1", None, 3])
def test_from_dict_needs_a_mapping(data: Any) -> None:
    with pytest.raises(PolicyError, match="must be a mapping"):
        Policy.from_dict(data)


def test_direct_construction_raises_pydantic_errors_without_input() -> None:
    with pytest.raises(ValidationError) as info:
        Policy(app=SECRET, exposure=SECRET)
    assert SECRET not in str(info.value)


SECRET_PLACES: list[dict[str, Any]] = [
    {"exposure": SECRET},
    {"version": SECRET},
    {"classifications": ["public", SECRET]},
    {"app": SECRET + "\n"},
    {"tools": {"t": {"data": SECRET}}},
    {"tools": {"t": {"scopes": [SECRET + " x"]}}},
    {"clearance": {"groups": {"g": SECRET}}},
    {"identity": {**IDENTITY, "algorithms": [SECRET]}},
    {"identity": {**IDENTITY, "issuer": f"https://u:{SECRET}@x.example"}},
    {"identity": {**IDENTITY, "leeway_s": SECRET}},
    {"outputs": {"classifiers": [{"kind": SECRET}]}},
    {"audit": {"sinks": [{"kind": SECRET}]}},
    {"audit": {"on_write_failure": SECRET}},
    {
        "use_cases": {
            "u": {"approval": {"by": SECRET, "reference": "R", "expires": SECRET}}
        }
    },
]
SECRET_KEYS: list[dict[str, Any]] = [
    {SECRET: 1},
    {"tools": {SECRET + "!": {}}},
    {"outputs": {"secrets": {SECRET: True}}},
]


@pytest.mark.parametrize("data", SECRET_PLACES + SECRET_KEYS)
def test_a_misplaced_secret_is_never_echoed(data: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data)
    error = info.value
    assert SECRET not in str(error)
    assert SECRET not in repr(error.errors)


@pytest.mark.parametrize("data", SECRET_PLACES + SECRET_KEYS)
def test_no_secret_is_reachable_from_the_error(data: dict[str, Any]) -> None:
    # pydantic's own message shows mapping keys in its locations: a secret
    # pasted as a key (a URL with a password) must not ride along chained.
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data)
    assert_no_secret_reachable(info.value, SECRET)


def test_json_schema_is_available() -> None:
    schema = Policy.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "tools" in schema["properties"]
