"""Red team of the SecretsFilter speed work (issue #13): every shortcut is a
place where a credential could be skipped.

* One judgement per distinct window: a site whose surrounding characters
  repeat an earlier site's reuses its outcome. A credential planted in a run
  of identical decoys, at its start, its end, or differing from the decoys in
  one character only, must still be found, and a memoised scan must report
  exactly what judging every site anew reports (hypothesis, both engines).
* The judging budget: crafted text (a keyword repeated, base64-ish runs,
  many ``=``) costs a bounded number of judgements (a count, not a timer),
  and text that would need more is blocked as a whole (fail closed), never
  passed with sites untried — also under ``action="redact"``.
* The keyword search's blind spots: a keyword in another case, in lookalike
  or fullwidth letters, with zero-width characters inside, across a line
  break, at the very start or end of the text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter
from aiinvariants.filters._base import Finding
from aiinvariants.filters._secret_rules import RULES, SecretRule
from aiinvariants.filters._secret_sites import LIMIT_RULE, budget_for

# Both candidate searches: the RE2 pre-scan and the pure-Python one.
pytestmark = pytest.mark.usefixtures("secrets_engine")

PASSWORD = "Tr0ub4dor&3xQz!9"
GHP = "ghp_" + "Xq7Lm2Rt9Vb4Nc8Kd1Fz6Hs3Jw5Pe0Ya2UgT"  # 36 after the prefix


def _plain() -> SecretsFilter:
    """The plain per-site scan: every site judged anew (no window memo)."""
    f = SecretsFilter()
    f._memo = False
    return f


def _per_rule() -> SecretsFilter:
    """The plain per-rule scan: every keyword occurrence tried (no shapes),
    pure Python, every site judged anew, no budget."""
    f = SecretsFilter()
    f._context_plan = [(k, None, i) for k, _, i in f._context_plan]
    f._use_native = False
    f._memo = False
    f._budget = 10**9
    return f


PER_RULE = _per_rule()


def _counting() -> tuple[SecretsFilter, list[int]]:
    """A filter whose every rule counts its regex runs at a site and its
    judge calls (``calls[0]`` judges, ``calls[1]`` regex runs)."""
    calls = [0, 0]

    def judge_of(rule: SecretRule) -> Callable[[re.Match[str], str], bool] | None:
        inner = rule.judge
        if inner is None:
            return None

        def judge(match: re.Match[str], text: str) -> bool:
            calls[0] += 1
            return inner(match, text)

        return judge

    class _Counted:
        """A compiled pattern that counts its runs."""

        def __init__(self, pattern: re.Pattern[str]) -> None:
            self._p = pattern
            self.pattern = pattern.pattern
            self.flags = pattern.flags
            self.groupindex = pattern.groupindex

        def match(self, *args: object) -> re.Match[str] | None:
            calls[1] += 1
            return self._p.match(*args)  # type: ignore[arg-type]

        def search(self, *args: object) -> re.Match[str] | None:
            calls[1] += 1
            return self._p.search(*args)  # type: ignore[arg-type]

    rules = [
        dataclasses.replace(r, judge=judge_of(r), pattern=_Counted(r.pattern))  # type: ignore[arg-type]
        for r in RULES
    ]
    return SecretsFilter(rules=rules), calls


def _ids(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


# -- crafted inputs cost a bounded number of judgements -------------------------

SIZE = 60_000
CRAFTED = {
    "keyword-operator": "password=",
    "keyword-space-value": "password = x ",
    "yaml-key": "token: ",
    "weak-values": "api_key=abcdefgh1 ",
    "header": "Authorization: ",
    "url-userinfo": "://a:b@",
    "jwt-prefix": "eyJ",
    "github-prefix": "ghp_",
    "equals": "=",
    "upper-keyword": "KEY ",
    "comparison": '"abcdefgh" == password ',
}


@pytest.mark.parametrize("unit", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_repeated_snippet_costs_a_handful_of_judgements(unit: str) -> None:
    text = (unit * (SIZE // len(unit) + 1))[:SIZE]
    f, calls = _counting()
    f.scan(text)
    # one per distinct window: the windows at the two ends of the text and
    # one in the middle, not one per occurrence (thousands here)
    assert calls[1] <= 1200
    assert calls[0] <= min(calls[1], budget_for(len(text)))


def test_judgements_never_exceed_the_budget_on_varied_crafted_text() -> None:
    # every occurrence differs from the others within its window: the memo
    # cannot help, the budget must
    text = "".join(f"password=pw{i:05d}x{i % 7} " for i in range(4000))
    f, calls = _counting()
    findings = f.scan(text)
    # a judgement only where a regex matched, and at most the budget of them
    assert calls[0] <= budget_for(len(text))
    assert LIMIT_RULE in _ids(findings)
    assert _ids(findings) == {LIMIT_RULE}  # the whole text, one finding


def test_past_the_budget_the_whole_text_is_blocked() -> None:
    text = "".join(f"password=pw{i:05d}x{i % 7} " for i in range(4000))
    text += f"\nand finally password = {PASSWORD}\n"
    findings = SecretsFilter(action="redact").scan(text)
    limit = [f for f in findings if f.rule_id == LIMIT_RULE]
    assert limit
    assert limit[0].action == "block"
    assert [f.rule_id for f in findings] == [LIMIT_RULE]
    with pytest.raises(OutputBlocked) as caught:
        OutputPipeline([SecretsFilter(action="redact")]).enforce(text)
    assert LIMIT_RULE in caught.value.rule_ids
    assert PASSWORD not in str(caught.value)


def test_past_the_budget_a_flagging_filter_flags() -> None:
    text = "".join(f"password=pw{i:05d}x{i % 7} " for i in range(4000))
    findings = SecretsFilter(action="flag").scan(text)
    assert [f.action for f in findings if f.rule_id == LIMIT_RULE] == ["flag"]


def test_ordinary_dense_text_stays_within_the_budget() -> None:
    # a long .env dump: one credential assignment per line, all found
    lines = [
        f"SERVICE_{i}_PASSWORD=Zq{i:04d}!vX{i * 7919 % 10007:05d}k" for i in range(300)
    ]
    text = "\n".join(lines)
    findings = SecretsFilter().scan(text)
    assert LIMIT_RULE not in _ids(findings)
    assert findings == _plain().scan(text)
    assert len({f.start for f in findings}) >= 295


# -- the memo never changes what is found ----------------------------------------


DECOYS = ["password=", "token: ", "api_key=abcdefgh1 ", "eyJ", "ghp_", "KEY ", "= "]


@pytest.mark.parametrize("decoy", DECOYS)
@pytest.mark.parametrize(
    "secret",
    [f"password={PASSWORD}", f"token: {PASSWORD}", GHP, f"KEY {PASSWORD}"],
)
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_credential_among_identical_decoys_is_found(
    decoy: str, secret: str, where: str
) -> None:
    run = decoy * (3000 // len(decoy))
    text = {
        "start": f"{secret}\n{run}",
        "middle": f"{run}\n{secret}\n{run}",
        "end": f"{run}\n{secret}",
    }[where]
    fast = SecretsFilter().scan(text)
    assert fast == _plain().scan(text)
    start = text.index(secret)
    # found, or the whole text blocked past the budget (fail closed)
    assert [f.rule_id for f in fast] == [LIMIT_RULE] or any(
        f.start <= start + len(secret) - 1 and f.end > start and f.action == "block"
        for f in fast
    )


def test_a_decoy_one_character_off_is_judged_on_its_own() -> None:
    # a run of weak values, one of which is a strong one differing by a few
    # characters: same shape, different window
    weak = "api_key=abcdefgh1 " * 200
    text = weak + f"api_key=abcdefgh1{PASSWORD} " + weak
    fast = SecretsFilter().scan(text)
    assert fast == _plain().scan(text)
    assert "generic-credential-assignment" in _ids(fast)


_SNIPPETS = st.sampled_from(
    [
        "password=",
        "password = ",
        "token: ",
        "KEY ",
        "Authorization: Bearer ",
        "eyJ",
        "ghp_",
        "=",
        " ",
        "\n",
        '"',
        PASSWORD,
        GHP,
        "abcdefgh1",
        "aB3dE5gH7jK9",
        "://u:",
        "@host",
        "-----BEGIN PRIVATE KEY-----\n",
    ]
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    parts=st.lists(_SNIPPETS, min_size=1, max_size=12),
    repeat=st.integers(min_value=1, max_value=40),
    tail=st.lists(_SNIPPETS, max_size=4),
)
def test_memoised_scan_reports_what_the_plain_scan_reports(
    parts: list[str], repeat: int, tail: list[str]
) -> None:
    text = "".join(parts) * repeat + "".join(tail)
    fast = SecretsFilter().scan(text)
    assert fast == _plain().scan(text)
    if LIMIT_RULE in _ids(fast):  # past the budget: blocked, whatever it holds
        assert [f.action for f in fast] == ["block"]
    else:
        assert fast == PER_RULE.scan(text)


# -- the keyword search's blind spots --------------------------------------------

BLIND_SPOTS = [
    f"PASSWORD={PASSWORD}",
    f"PaSsWoRd = '{PASSWORD}'",
    # fullwidth
    "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44 = '" + PASSWORD + "'",
    "p\u0430ssw\u043erd = '" + PASSWORD + "'",  # Cyrillic a and o
    f"pass\u200bword = '{PASSWORD}'",  # zero-width space in the keyword
    f"password =\n    '{PASSWORD}'",  # across a line break
    f"password: |\n  {PASSWORD}\n",  # YAML block scalar
    f"password={PASSWORD}",  # at the very start and end of the text
    f"{GHP}",
    f"x{GHP}",
    "\uff47\uff48\uff50\uff3f" + GHP[4:],  # fullwidth prefix
    f"g\u200bhp_{GHP[4:]}",
]


@pytest.mark.parametrize("text", BLIND_SPOTS)
def test_a_credential_at_a_blind_spot_is_found(text: str) -> None:
    findings = SecretsFilter().scan(text)
    assert findings
    assert findings == _plain().scan(text)


@pytest.mark.parametrize("text", BLIND_SPOTS)
def test_a_credential_at_a_blind_spot_after_crafted_text_is_found(text: str) -> None:
    crafted = "password=" * 2000 + "\n"
    findings = SecretsFilter().scan(crafted + text)
    # the crafted run alone is past the budget: the text is blocked
    assert [(f.rule_id, f.action) for f in findings] == [(LIMIT_RULE, "block")]
    with pytest.raises(OutputBlocked):
        OutputPipeline([SecretsFilter(action="redact")]).enforce(crafted + text)


@pytest.mark.parametrize("text", BLIND_SPOTS)
def test_a_credential_at_a_blind_spot_after_periodic_text_is_found(text: str) -> None:
    # under the budget: a keyword every 40 characters, judged once (memo)
    crafted = "the password is not shown here, sorry.\n" * 100
    findings = SecretsFilter().scan(crafted + text)
    assert LIMIT_RULE not in _ids(findings)
    assert any(f.end > len(crafted) for f in findings)
