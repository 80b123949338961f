"""Routes by which a credential could pass SecretsFilter, and quiet audit.

Each class of route is tested by what the caller finally receives: the
finding (and its stable rule id), the redacted text, the exception and the
audit trail. None of them may carry the value.
"""

from __future__ import annotations

import base64
import json
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.audit import AuditLog, capture
from aiinvariants.filters import (
    OutputPipeline,
    PIIFilter,
    SecretsFilter,
    SystemPromptLeakFilter,
)

FILTER = SecretsFilter()
REDACT = OutputPipeline([SecretsFilter(action="redact")])
PASSWORD = "Latest-Summer2024!"

# Every syntax an answer can use to give a credential-named key a value.
ASSIGNMENT_FORMS = [
    'password = "{}"',
    "password: {}",
    "PASSWORD={}",
    "export DB_PASSWORD={}",
    'db_password := "{}"',
    "$dbPassword .= '{}';",
    'apiToken ?= "{}"',
    'api_token ::= "{}"',
    '"client_secret" => "{}",',
    '{{"client_secret": "{}"}}',
    "secret_key: '{}'",
    "<apiToken>{}</apiToken>",
    "<password>\n    {}\n</password>",
    'System.setProperty("APP_TOKEN", "{}")',
    'var authToken string = "{}"',
    'char db_pass[32] = "{}";',
    'password = @"{}";',
    'mysql --user app --password "{}"',
    'if (api_key == "{}") {{',
    'if ("{}" === db_password) {{',
    'The password is "{}".',
    "credentials:\n  password: {}\n",
    "    private_key = '{}'",
]


@pytest.mark.parametrize("form", ASSIGNMENT_FORMS)
def test_every_assignment_syntax_is_found_and_fully_masked(form: str) -> None:
    text = form.format(PASSWORD)
    findings = FILTER.scan(text)
    assert findings, text
    assert {f.rule_id for f in findings} <= {
        "generic-credential-assignment",
        "credential-comparison",
    }
    masked = REDACT.check(text).text
    assert PASSWORD not in masked
    assert "Summer2024" not in masked


@settings(max_examples=150, deadline=None)
@given(
    form=st.sampled_from(ASSIGNMENT_FORMS),
    body=st.lists(
        st.sampled_from(string.ascii_letters + string.digits),
        min_size=6,
        max_size=30,
        unique=True,
    ).map("".join),
    digit=st.sampled_from(string.digits),
    symbol=st.sampled_from("!#%&*-"),
)
def test_strong_values_in_any_form_never_survive_redaction(
    form: str, body: str, digit: str, symbol: str
) -> None:
    """Property: a varied value with letters, a digit and a symbol is a
    credential, whatever the syntax that assigns it."""
    value = f"Q{body}{digit}{symbol}z"
    text = form.format(value)
    out = REDACT.check(text).text
    assert value not in out


@settings(max_examples=100, deadline=None)
@given(
    word=st.sampled_from(
        ["example", "test", "secret", "token", "sample", "dummy", "password", "fake"]
    ),
    where=st.integers(0, 3),
)
def test_a_placeholder_word_inside_a_real_password_does_not_hide_it(
    word: str, where: int
) -> None:
    """The old check dismissed any value containing "test" or "example"."""
    parts = ["Kv9", "Rt7#", "mQ2", "Lp4"]
    parts.insert(where, word.capitalize())
    value = "".join(parts)
    assert FILTER.scan(f'password = "{value}"'), value


@pytest.mark.parametrize(
    "text",
    [
        'token = request.headers.get("Authorization", "")',
        'password = os.environ["DB_PASSWORD"]',
        "api_key = settings.OPENAI_API_KEY",
        "secret = get_secret(name)",
        'password_hint = "the name of your first pet"',
        "max_tokens: 4096",
        "token_type: Bearer",
        'primaryKey = "user_id_and_created_at"',
        'SECRET_NAME = "prod/db/credentials-v2"',
        'OPENAI_API_KEY="sk-..."',
        "Authorization: Bearer <YOUR_TOKEN>",
        "Authorization: Basic YnJvd3Nlcjo=",  # "browser:" has no password
        "password: ${DB_PASSWORD}",
        'client = OpenAI(api_key="YOUR_API_KEY")',
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "- (id)hf_requiredCharacteristicTypesForDisplayMetadata;",
        "auth: login.example.com",
        "RUN --mount=type=secret,id=deploy_key_secret make",
        'notes = "Maven - io.jsonwebtoken:jjwt-jackson-0.11.2"',
        "const validKeyChars = '0123456789abcdefghijklmnopqrstuvwxyz_-.'",
    ],
)
def test_code_and_placeholders_that_only_name_a_credential(text: str) -> None:
    assert FILTER.scan(text) == []


def test_authorization_headers() -> None:
    basic = base64.b64encode(b"deploy:Wq8-zR3#kLm2").decode()
    for text, rule in (
        (f"Authorization: Basic {basic}", "authorization-header"),
        ('-H "Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0"', None),
    ):
        found = {f.rule_id for f in FILTER.scan(text)}
        assert found, text
        if rule:
            assert rule in found


# -- token boundaries: base64 blobs and identifiers --------------------------

PREFIXES = ["AKIA", "ghp_", "sk_live_", "xoxb-", "AIza", "glpat-", "npm_", "hf_"]


@settings(max_examples=120, deadline=None)
@given(
    prefix=st.sampled_from(PREFIXES),
    seed=st.integers(0, 2**32 - 1),
    at=st.integers(8, 200),
)
def test_provider_prefixes_inside_base64_images_are_not_findings(
    prefix: str, seed: int, at: int
) -> None:
    """A prefix planted at any offset of a base64 image is part of the image."""
    rnd = random.Random(seed)
    blob = base64.b64encode(rnd.randbytes(300)).decode()
    planted = blob[:at] + prefix + blob[at:]
    for text in (
        "data:image/png;base64," + planted,
        f'<img src="data:image/jpeg;base64,{planted}">',
    ):
        assert FILTER.scan(text) == [], text[:120]


def test_one_glued_side_is_still_a_finding() -> None:
    """A stray letter before or after a key must not hide it."""
    aws = "AKIAQZ7RT2MX4K5W6Y3J"
    ghp = "ghp_" + "aZ3kQ9" * 6
    assert FILTER.scan("x" + aws)
    assert FILTER.scan(aws + "x")
    assert {f.rule_id for f in FILTER.scan(ghp + aws)} >= {
        "github-pat",
        "aws-access-key-id",
    }
    # three back to back: the middle one is glued on both sides to keys
    triple = aws + aws.replace("Q", "P") + aws.replace("Q", "R")
    assert len(FILTER.scan(triple)) == 3
    # redaction leaves nothing behind either way
    assert REDACT.check(triple).text == "[REDACTED]"


@pytest.mark.parametrize("pad", [1, 3, 10, 23])
def test_short_wrapping_is_reported_and_masked_with_the_key(pad: int) -> None:
    """Junk glued on both sides, shorter than a blob, does not hide a key;
    the junk is masked with it, so no part of the key survives."""
    aws = "AKIAQZ7RT2MX4K5W6Y3J"
    text = f"key: {'Q' * pad}{aws}{'z' * pad} end"
    assert [f.rule_id for f in FILTER.scan(text)] == ["aws-access-key-id"]
    assert REDACT.check(text).text == "key: [REDACTED] end"


def test_a_blob_is_a_blob_at_48_glued_characters() -> None:
    """The documented trade-off: inside 48+ base64 characters, a prefix
    match is part of the blob (registered secrets are still found there)."""
    aws = "AKIAQZ7RT2MX4K5W6Y3J"
    assert FILTER.scan("x" * 24 + aws + "y" * 24) == []
    assert FILTER.scan("x" * 23 + aws + "y" * 24)
    blob = "x" * 24 + aws + "y" * 24
    assert SecretsFilter(registered=[aws]).scan(blob)


# -- quieter audit, structured OutputBlocked ----------------------------------

PROMPT = (
    "You are SupportBot for Example Corp. Answer questions about orders and "
    "invoices. Never reveal internal pricing rules. Always escalate refunds "
    "above 500 EUR to a human agent and never mention discount codes."
)


def test_one_leaked_system_prompt_is_one_audit_event_per_filter() -> None:
    leak = SystemPromptLeakFilter()
    leak.protect(PROMPT)
    pipeline = OutputPipeline([SecretsFilter(), leak, PIIFilter()], audit=AuditLog())
    text = f"My instructions: {PROMPT} Mail me at a.b@example.org"
    with capture() as events, pytest.raises(OutputBlocked):
        pipeline.enforce(text)
    owners = [e.details["filter"] for e in events]
    assert sorted(owners) == ["PIIFilter", "SystemPromptLeakFilter"]
    prompt_event = next(e for e in events if e.details["filter"] != "PIIFilter")
    assert prompt_event.decision == "deny"
    assert isinstance(prompt_event.details["findings"], int)
    assert prompt_event.details["findings"] >= 1
    dumped = json.dumps([e.to_dict() for e in events])
    assert "discount codes" not in dumped
    assert "a.b@example.org" not in dumped


def test_many_findings_of_one_filter_are_counted_in_one_event() -> None:
    keys = [
        "AKIA" + "".join(random.Random(i).choices("ABCDEFGHJK234567", k=16))
        for i in range(30)
    ]
    text = " and ".join(keys)
    pipeline = OutputPipeline([SecretsFilter(action="redact")], audit=AuditLog())
    with capture() as events:
        result = pipeline.check(text)
    assert len(result.findings) == 30
    (event,) = events
    assert event.details["findings"] == 30
    assert event.details["redacted"] == 30
    assert event.details["rules"] == "aws-access-key-id=30"
    assert event.details["truncated"] is False
    assert len(str(event.details["spans"]).split(",")) == 30
    assert all(key not in json.dumps(event.to_dict()) for key in keys)


def test_output_blocked_carries_rule_ids_and_value_free_findings() -> None:
    value = "ghp_" + "aZ3kQ9" * 6
    text = f'token {value} and password = "{PASSWORD}"'
    pipeline = OutputPipeline([SecretsFilter()])
    with pytest.raises(OutputBlocked) as info:
        pipeline.enforce(text)
    exc = info.value
    assert exc.code == "output_blocked"
    assert exc.rule_ids == ("generic-credential-assignment", "github-pat")
    assert {f.rule_id for f in exc.findings} == set(exc.rule_ids)
    for finding in exc.findings:
        assert text[finding.start : finding.end] in (value, f'password = "{PASSWORD}"')
    shown = " ".join((str(exc), repr(exc), repr(exc.findings), str(exc.args)))
    assert value[4:16] not in shown
    assert "Summer2024" not in shown
    assert exc.__cause__ is None
    assert exc.__context__ is None


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), at=st.integers(0, 100))
def test_a_random_key_with_xxxx_inside_is_still_a_key(seed: int, at: int) -> None:
    """Placeholder masks count only as a large part of the value: a long
    random key that happens to contain "xxxxx" is reported."""
    rnd = random.Random(seed)
    body = "".join(rnd.choices(string.ascii_letters + string.digits, k=140))
    token = "xoxe.xoxp-1-" + body[:at] + "xxxxx" + body[at:]
    assert "slack-config-token" in {f.rule_id for f in FILTER.scan(token)}
    assert FILTER.scan("sk_live_" + "X" * 24) == []


# -- HTTP: query strings, headers in client code ------------------------------

HTTP_FORMS = [
    "https://api.example.com/v1/items?api_key={}&limit=10",
    'requests.get(url, headers={{"Authorization": "Bearer {}"}})',
    "fetch(url, {{ headers: {{ 'X-Api-Key': '{}' }} }})",
    'curl -H "Authorization: Token {}" https://api.example.com',
    "https://app:{}@db.internal:5432/app",
    'client = Client(api_key="{}")',
]


@pytest.mark.parametrize("form", HTTP_FORMS)
def test_credentials_in_http_code_are_masked(form: str) -> None:
    value = "hT7-vQ2kLm9#Wp4zRx8N"
    text = form.format(value)
    assert FILTER.scan(text), text
    assert value not in REDACT.check(text).text
    assert "Wp4zRx8N" not in REDACT.check(text).text
