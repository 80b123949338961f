"""PIIFilter: checksums decide, look-alike numbers pass."""

from __future__ import annotations

import pytest

from aiinvariants import PolicyError
from aiinvariants.filters import PIIFilter
from aiinvariants.filters._pii import iban_ok, luhn_ok

F = PIIFilter()


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("write to jane.doe+news@mail.example.co.uk today", "pii-email"),
        ("call +41 44 668 18 00", "pii-phone"),
        ("call (415) 555-2671", "pii-phone"),
        ("call 020 7946 0958", "pii-phone"),
        ("card 4111 1111 1111 1111", "pii-payment-card"),
        ("card 5500-0000-0000-0004", "pii-payment-card"),
        ("card 378282246310005", "pii-payment-card"),
        ("IBAN DE89 3704 0044 0532 0130 00", "pii-iban"),
        ("IBAN GB82WEST12345698765432", "pii-iban"),
        ("SSN 123-45-6789", "pii-us-ssn"),
        ("AHV 756.9217.0769.85", "pii-ch-ahv"),
        ("NIR 2 55 08 14 168 025 38", "pii-fr-nir"),
        ("personnummer 811218-9876", "pii-se-personnummer"),
    ],
)
def test_detects(text: str, rule: str) -> None:
    assert rule in {f.rule_id for f in F.scan(text)}


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # Luhn fails
        "IBAN DE89 3704 0044 0532 0130 01",  # mod-97 fails
        "SSN 666-45-6789",  # never issued
        "on 2024-01-01 at 10.1.2.3",
        "version 1.2.3 build 20240101",
        "sha 3f786850e387550fdab836ed7e6dc881de23001b",
        "order #12345678",
        "user@localhost",
    ],
)
def test_ignores(text: str) -> None:
    assert F.scan(text) == []


def test_checksums() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert iban_ok("CH93 0076 2011 6238 5295 7")


def test_kinds_and_action() -> None:
    only = PIIFilter(kinds=["email"], action="redact")
    assert [f.rule_id for f in only.scan("a@b.io 4111 1111 1111 1111")] == ["pii-email"]
    with pytest.raises(PolicyError):
        PIIFilter(kinds=["dna"])  # type: ignore[list-item]
