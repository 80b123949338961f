"""Judging fixes found by reading the detect-secrets corpus's misses by
class (the rules are written from the formats, not from its strings)."""

from __future__ import annotations

import base64

import pytest

from aiinvariants.filters import SecretsFilter

F = SecretsFilter()


def rules(text: str) -> set[str]:
    return {f.rule_id for f in F.scan(text)}


def test_a_test_pypi_token_is_a_pypi_token() -> None:
    # A macaroon v2 starts with version 2, field 1 (location), its length:
    # the location names the index the token is for.
    body = bytes(range(7, 250, 3))  # field 2 (identifier) and the rest
    for index in (b"pypi.org", b"test.pypi.org"):
        macaroon = bytes([2, 1, len(index)]) + index + b"\x02" + body
        token = "pypi-" + base64.urlsafe_b64encode(macaroon).decode().rstrip("=")
        assert "pypi-token" in rules(token), index
    assert "pypi-token" not in rules(
        "pypi-" + base64.urlsafe_b64encode(b"\x02\x01\x07pypi.io\x02" + body).decode()
    )


@pytest.mark.parametrize(
    "token",
    [
        "xoxp-523423-234243-234233-e039d02840a0b9379c",  # a short workspace id
        "xoxs-52342-2342431-2342331-e039d02840a0b9379c",
        "xoxb-7-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
        "xoxa-2-511111111-31111111111-3111111111111-e039d02840a0b9379c",
        "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",  # as before
    ],
)
def test_slack_ids_of_any_width(token: str) -> None:
    assert rules(token) & {"slack-bot-token", "slack-user-token"}


@pytest.mark.parametrize(
    "text",
    [
        "xoxe.xoxp-1-SlackAppConfigurationAccessTokenHere",  # words after one id
        "xoxp-1-RANDOMSTRINGHERE",
        "xoxb-12-abc",
    ],
)
def test_a_short_id_needs_a_second_id(text: str) -> None:
    assert not rules(text) & {"slack-bot-token", "slack-user-token"}


@pytest.mark.parametrize(
    "name", ["ibm_cloud_iamapikey", "my_aws_secretkey", "prod_db_accountkey"]
)
def test_a_qualifier_glued_to_key_qualifies_it(name: str) -> None:
    assert "generic-credential-assignment" in rules(f"{name}= Xk9#mP2vLq7zR4")


@pytest.mark.parametrize(
    "name", ["user_sort_key", "ibm_cloud_monkey", "db_table_primarykey", "a_b_hotkey"]
)
def test_an_unqualified_key_is_still_no_credential(name: str) -> None:
    assert "generic-credential-assignment" not in rules(f"{name}= Xk9#mP2vLq7zR4")
