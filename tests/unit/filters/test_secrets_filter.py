"""SecretsFilter: every rule fires on its format, look-alikes do not."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from aiinvariants import PolicyError
from aiinvariants.filters import RULES, SecretsFilter
from aiinvariants.filters._secret_rules import MAX_MATCH, github_checksum_ok

try:
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_parse  # type: ignore[no-redef]

CORPUS = Path(__file__).parents[2] / "fixtures" / "secrets_corpus.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
FILTER = SecretsFilter()


def test_ruleset_is_large_and_unique() -> None:
    assert len(RULES) >= 60
    assert len({r.id for r in RULES}) == len(RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_is_bounded_and_keyword_anchored(rule: object) -> None:
    pattern = rule.pattern  # type: ignore[attr-defined]
    low, high = sre_parse.parse(pattern.pattern, pattern.flags).getwidth()
    assert low >= 3
    assert high <= MAX_MATCH
    assert rule.keywords
    assert all(k == k.lower() for k in rule.keywords)
    assert rule.source
    assert rule.what


def test_every_rule_has_a_true_positive_in_the_corpus() -> None:
    covered = {row["rule_id"] for row in ROWS if row["label"] == "TP"}
    assert covered == {r.id for r in RULES}


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r["label"] == "TP"], ids=lambda r: r["id"]
)
def test_true_positives(row: dict[str, str]) -> None:
    assert row["rule_id"] in {f.rule_id for f in FILTER.scan(row["text"])}


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r["label"] == "FP"], ids=lambda r: r["id"]
)
def test_false_positives_are_not_findings(row: dict[str, str]) -> None:
    assert FILTER.scan(row["text"]) == []


def test_github_checksum_raises_severity() -> None:
    row = next(r for r in ROWS if r["rule_id"] == "github-pat")
    token = re.search(r"ghp_\w{36}", row["text"]).group()  # type: ignore[union-attr]
    assert github_checksum_ok(token)
    assert FILTER.scan(token)[0].severity == "critical"
    broken = token[:-1] + ("A" if token[-1] != "A" else "B")
    (finding,) = FILTER.scan(broken)
    assert finding.severity == "high"  # still a finding: fail closed


def test_private_key_always_blocks_even_in_redact_mode() -> None:
    f = SecretsFilter(action="redact")
    (finding,) = f.scan("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
    assert finding.action == "block"


SECRET = "Zq9-vLm2#Rt8Kp4X"


@pytest.mark.parametrize(
    "shown",
    [
        SECRET,
        SECRET.lower(),
        SECRET.upper(),
        " ".join(SECRET),
        "\u200b".join(SECRET),
        "-".join(SECRET),
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(b"xx" + SECRET.encode()).decode(),
        SECRET.encode().hex(),
        SECRET.encode().hex().upper(),
        quote(SECRET, safe=""),
    ],
)
def test_registered_secret_obfuscations(shown: str) -> None:
    f = SecretsFilter(registered=[SECRET])
    assert "registered-secret" in {x.rule_id for x in f.scan(f"the key is {shown}.")}


def test_registered_secret_must_be_long_enough() -> None:
    with pytest.raises(PolicyError, match="at least 8"):
        SecretsFilter(registered=["abc"])
    with pytest.raises(PolicyError):
        SecretsFilter(registered="a-single-string-not-a-list")
    with pytest.raises(PolicyError):
        SecretsFilter(action="drop")  # type: ignore[arg-type]


def test_repr_never_shows_registered_values() -> None:
    f = SecretsFilter(registered=[SECRET])
    assert SECRET not in repr(f)
    assert "registered=1" in repr(f)


def test_overlapping_keyword_occurrences_are_all_tried() -> None:
    text = "sk-ant-api03-" + "A1b2" * 23 + "xyAA"
    assert {f.rule_id for f in FILTER.scan(text)} == {"anthropic-api-key"}
