"""Attacks on the RE2 pre-scan (the ``re2`` extra): text shaped so that the
native candidate search misses a credential the rules would catch.

Each case is a credential an answer really leaks, wrapped in what could
throw a pre-scan off: multi-byte characters before it (byte and character
offsets differ), the characters Python case-folds to ASCII letters, anchors
back to back or overlapping, a credential right after a long anchor match,
a value that is itself non-ASCII. The secure outcome: the answer is blocked
(``output_blocked``) by the same rule as without ``re2``, and the redaction
masks the same span.
"""

from __future__ import annotations

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter

pytest.importorskip("re2")

GHP = "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9"
AKIA = "AKIAQZ7RT2MX4K5W6Y3J"
NATIVE = SecretsFilter(action="redact")
PURE = SecretsFilter(action="redact")
PURE._use_native = False

CASES = {
    "multibyte before": "😀" * 50 + "日本語のテキスト " + GHP,
    "multibyte between": f"key {AKIA} — ключ — {GHP} ✓",
    "long-s keyword": "\u017fecret = 'hU7kd82Lpq9'; token " + GHP,
    "kelvin keyword": "\u212aEY: 'hU7kd82Lpq9' " + AKIA,
    "dotless i": "\u0131\u0130 " + GHP,
    "back to back": GHP * 4,
    "overlapping prefixes": "AKIA" + AKIA,
    "after a long anchor match": "ZXlK" + "QUJD" * 300 + " " + GHP,
    "assignment with non-ASCII value": "password = 'Pässwörd-2024!x'",
    "assignment after emoji": "🔑 DB_PASSWORD=Xq9.Zr8KpL2wTT",
    "PEM after CJK": "鍵:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA",
    "comparison after accents": 'é if "Xq9.Zr8KpL2wTT" == password:',
    "question marks": "??? " + GHP + " ???",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_native_prescan_finds_what_the_rules_find(name: str) -> None:
    text = CASES[name]
    native, pure = NATIVE.scan(text), PURE.scan(text)
    assert native  # the credential is found at all
    assert native == pure
    blocking = OutputPipeline([SecretsFilter()])
    with pytest.raises(OutputBlocked) as caught:
        blocking.enforce(text)
    assert caught.value.code == "output_blocked"
    assert {f.rule_id for f in native} <= set(caught.value.rule_ids)


@pytest.mark.parametrize("name", sorted(CASES))
def test_redaction_is_the_same_with_and_without_re2(name: str) -> None:
    text = CASES[name]
    native = OutputPipeline([NATIVE]).check(text).text
    pure = OutputPipeline([PURE]).check(text).text
    assert native == pure
    for secret in (GHP, AKIA, "hU7kd82Lpq9", "Xq9.Zr8KpL2wTT"):
        assert secret not in native
