"""A credential whose name is not right before its value.

Terraform variable blocks (name in the header, value in ``default``) and
``gh secret set NAME --body VALUE`` (the value of a secret is a secret by
definition). Every spelling the tools document is found, one-shot and
streamed in any chunking; placeholders, shell variables and names that hold
no credential are not; cost stays bounded on adversarial repetitions.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard

PASSWORD = "Tr0ub4dor&3xQz!9"
FILTER = SecretsFilter()

FOUND = [
    f'variable "db_password" {{\n  type = string\n  default = "{PASSWORD}"\n}}',
    f'variable "db_password" {{\n  sensitive = true\n  default = "{PASSWORD}"\n}}',
    f'variable "stripeApiKey" {{ default = "{PASSWORD}" }}',
    f'VARIABLE  "ADMIN_TOKEN" {{\n\tdescription = "admin"\n\tdefault= "{PASSWORD}"\n}}',
    f'gh secret set API_TOKEN --body "{PASSWORD}"',
    f"gh secret set API_TOKEN --body '{PASSWORD}'",
    f"gh secret set DEPLOY -b {PASSWORD}",
    f"gh secret set DEPLOY --body={PASSWORD}",
    f'gh secret set DB --repo octo/app --env prod --body "{PASSWORD}"',
    f'run: |\n  gh  secret  set NPM -b "{PASSWORD}" --org octo',
]

NOT_FOUND = [
    'variable "api_token" { default = "" }',
    f'variable "region" {{ default = "{PASSWORD}" }}',  # not a credential name
    f'variable "public_key" {{ default = "{PASSWORD}" }}',
    'variable "db_password" { default = "changeme" }',
    'variable "db_password" { default = "<your-password-here>" }',
    'variable "key_name" { default = "my-deploy-key" }',
    'gh secret set API_TOKEN --body "$API_TOKEN"',
    "gh secret set API_TOKEN --body $(cat token.txt)",
    "gh secret set X -b changeme",
    "gh secret set API_TOKEN < token.txt",
    "gh secret list --body-file",
]


@pytest.mark.parametrize("text", FOUND)
def test_found(text: str) -> None:
    rules = {f.rule_id for f in FILTER.scan(text)}
    assert rules & {"terraform-variable-default", "gh-secret-set-body"}


@pytest.mark.parametrize("text", NOT_FOUND)
def test_not_found(text: str) -> None:
    assert FILTER.scan(text) == []


@pytest.mark.parametrize("text", FOUND[:6:5])
def test_blocked_without_the_value_in_the_error(text: str) -> None:
    pipeline = OutputPipeline([SecretsFilter()])
    with pytest.raises(OutputBlocked) as caught:
        pipeline.enforce(text)
    assert caught.value.code == "output_blocked"
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value.findings)


@settings(max_examples=60, deadline=None)
@given(text=st.sampled_from(FOUND), cuts=st.lists(st.integers(1, 9), max_size=30))
def test_streamed_in_any_chunking_is_redacted_like_one_shot(
    text: str, cuts: list[int]
) -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    answer = "Sure, here it is:\n" + text + "\nDone."
    guard = StreamGuard(pipeline)
    out: list[str] = []
    at = 0
    for size in cuts:
        out.append(guard.feed(answer[at : at + size]))
        at += size
    out.append(guard.feed(answer[at:]))
    out.append(guard.close())
    streamed = "".join(out)
    assert streamed == pipeline.check(answer).text
    assert PASSWORD not in streamed


@pytest.mark.parametrize(
    "unit",
    ['variable "password" {', 'variable "password" { default = "', "gh secret set ",
     "gh secret set x --body ", "gh secret set x -b gh secret set "],
)  # fmt: skip
def test_adversarial_repetitions_stay_local(unit: str) -> None:
    """Every match is bounded: no finding or decision spans the text."""
    text = unit * (20_000 // len(unit))
    found = FILTER.scan(text)
    assert all(
        f.end - f.start <= FILTER.max_finding
        for f in found
        if f.rule_id != "secrets-scan-limit"  # spans the text, like filter-error
    )
    # nothing, or (a candidate every few characters) blocked past the
    # judging budget
    assert [(f.rule_id, f.action) for f in found] in (
        [],
        [("secrets-scan-limit", "block")],
    )


# -- a nested block (validation, a second validation's worth) before default ------

_VALIDATION = (
    "  validation {\n    condition     = length(var.db_password) >= 12\n"
    '    error_message = "The password must have at least twelve characters."\n  }\n'
)

NESTED_FOUND = [
    # the block the Terraform docs show, then default
    f'variable "db_password" {{\n  type = string\n{_VALIDATION}'
    f'  default = "{PASSWORD}"\n}}',
    # description and sensitive around the block
    f'variable "api_token" {{\n  description = "CI token"\n{_VALIDATION}'
    f'  sensitive = true\n  default   = "{PASSWORD}"\n}}',
    # the block first, nothing before it
    f'variable "admin_secret" {{\n{_VALIDATION}  default = "{PASSWORD}"\n}}',
    # default before the block: the attributes-only form still reads it
    f'variable "db_password" {{\n  default = "{PASSWORD}"\n{_VALIDATION}}}',
    # on one line, tabs, upper case
    f'VARIABLE "DB_PASSWORD" {{ validation {{ condition = true }} '
    f'default = "{PASSWORD}" }}',
    f'variable\t"deploy_key"\t{{\n\tvalidation {{\n\t\tcondition = true\n\t}}\n'
    f'\tdefault = "{PASSWORD}"\n}}',
    # a long name with the credential word late in it
    f'variable "prod_eu_west_1_reporting_database_admin_password" {{\n{_VALIDATION}'
    f'  default = "{PASSWORD}"\n}}',
]


@pytest.mark.parametrize("text", NESTED_FOUND)
def test_a_default_after_a_nested_block_is_found(text: str) -> None:
    rules = {f.rule_id for f in FILTER.scan(text)}
    assert "terraform-variable-default" in rules
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    assert PASSWORD not in pipeline.check(f"Here:\n{text}\nDone.").text


@settings(max_examples=40, deadline=None)
@given(
    text=st.sampled_from(NESTED_FOUND),
    cuts=st.lists(st.integers(1, 13), max_size=40),
)
def test_a_nested_block_streamed_in_any_chunking_is_redacted_like_one_shot(
    text: str, cuts: list[int]
) -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    answer = "Sure:\n" + text + "\nDone."
    guard = StreamGuard(pipeline)
    out: list[str] = []
    at = 0
    for size in cuts:
        out.append(guard.feed(answer[at : at + size]))
        at += size
    out.append(guard.feed(answer[at:]))
    out.append(guard.close())
    assert "".join(out) == pipeline.check(answer).text
    assert PASSWORD not in "".join(out)


NESTED_NOT_FOUND = [
    # the default inside the nested block is not the variable's default
    f'variable "db_password" {{\n  validation {{\n    default = "{PASSWORD}"\n  }}\n}}',
    # placeholders and non-credential names stay quiet with a block too
    f'variable "db_password" {{\n{_VALIDATION}  default = "changeme"\n}}',
    f'variable "region" {{\n{_VALIDATION}  default = "{PASSWORD}"\n}}',
    # a default of another block after the variable block closed
    f'variable "db_password" {{\n{_VALIDATION}}}\nlocals {{ x = {{}} }}\n'
    f'resource "r" "x" {{ default = "{PASSWORD}" }}',
]


@pytest.mark.parametrize("text", NESTED_NOT_FOUND)
def test_a_default_outside_the_variable_level_is_not_read(text: str) -> None:
    rules = {f.rule_id for f in FILTER.scan(text)}
    assert "terraform-variable-default" not in rules


@pytest.mark.parametrize(
    "unit",
    ['variable "password" { validation { ', 'variable "password" { x { } ',
     'variable "password" { a { } default = "', "{ } { default ="],
)  # fmt: skip
def test_nested_block_repetitions_stay_local(unit: str) -> None:
    text = unit * (20_000 // len(unit))
    found = FILTER.scan(text)
    assert all(
        f.end - f.start <= FILTER.max_finding
        for f in found
        if f.rule_id != "secrets-scan-limit"
    )


def test_a_long_default_after_a_nested_block_blocks_rather_than_half_masks() -> None:
    """After a nested block the rule reads 64 characters of the value (the
    width budget): a longer one runs on and blocks, even with redaction."""
    value = ("Tr0ub4dor&3xQz!9-" * 6)[:90]
    text = f'variable "db_password" {{\n{_VALIDATION}  default = "{value}"\n}}'
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    result = pipeline.check(text)
    assert result.blocked
    assert "terraform-variable-default" in {f.rule_id for f in result.findings}
