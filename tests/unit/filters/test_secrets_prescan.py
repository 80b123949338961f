"""The RE2 pre-scan (the ``re2`` extra) reports exactly the pure-Python findings.

Both engines run on the same texts: the in-repo corpus, fresh cases from
the documented formats, the public corpora (when present), generated text
and the places a pre-scan could lose a candidate (anchors back to back,
non-ASCII text, the characters that case-fold to ASCII, window edges). The
assignment shape's RE2 form is checked to match wherever the shape does.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants.filters import SecretsFilter
from aiinvariants.filters._assignment_syntax import ASSIGN_SHAPE, ASSIGN_SHAPE_PRESCAN
from aiinvariants.filters._base import Finding
from aiinvariants.filters._prescan import anchors_of, loosen

re2 = pytest.importorskip("re2")

FIXTURES = Path(__file__).parents[2] / "fixtures"
ROOT = Path(__file__).parents[3]
CORPORA = next(
    (
        base / "shared" / "corpora"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "corpora").is_dir()
    ),
    ROOT.parent / "shared" / "corpora",
)
NATIVE = SecretsFilter()
PURE = SecretsFilter()
PURE._use_native = False


def _both(text: str) -> tuple[list[Finding], list[Finding]]:
    return NATIVE.scan(text), PURE.scan(text)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_secrets_corpus", FIXTURES / "make_secrets_corpus.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _texts(path: Path, key: str = "text") -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return [str(json.loads(line)[key]) for line in fh if line.strip()]


def test_the_native_engine_is_built_and_used() -> None:
    """Without this, every comparison below would compare the pure path
    with itself."""
    native = NATIVE._native()
    assert native is not None
    prescan, _ = native
    assert prescan.windows("nothing to see here") is not None
    assert list(prescan.windows("plain prose, no credential at all") or [1]) == []


def test_empty_and_registered_only_rulesets() -> None:
    """``rules=()`` (registered secrets only) has nothing to pre-scan: the
    filter must still scan, not fail (a failing filter blocks every answer)."""
    only = SecretsFilter(registered=["Zq9-vLm2#Rt8Kp4X"], rules=())
    assert only.scan("clean text") == []
    assert [f.rule_id for f in only.scan("x Zq9-vLm2#Rt8Kp4X y")] == [
        "registered-secret"
    ]


def test_in_repo_corpus_and_fresh_cases_agree() -> None:
    texts = _texts(FIXTURES / "secrets_corpus.jsonl")
    texts += [r["text"] for r in _generator().fresh_cases(2713, per_rule=4)]
    found = 0
    for text in texts:
        native, pure = _both(text)
        assert native == pure, text[:0]  # never print a credential
        found += bool(native)
    assert found > len(texts) // 4


@pytest.mark.parametrize(
    ("folder", "name"),
    [("secrets-detect-secrets", "cases.jsonl"), ("secrets-gitleaks", "cases.jsonl.gz")],
)
def test_public_corpora_agree(folder: str, name: str) -> None:
    path = CORPORA / folder / name
    if not path.exists():
        pytest.skip(f"{folder} corpus absent")
    differ = found = 0
    for text in _texts(path):
        native = NATIVE.scan(text)
        differ += native != PURE.scan(text)
        found += bool(native)
    assert differ == 0
    assert found > 100


_PIECES = [
    "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9",
    "AKIAQZ7RT2MX4K5W6Y3J",
    "password = 'hU7kd82Lpq9' ",
    'api_key: "Xq9.Zr8KpL2wTT" ',
    "token = request.headers.get(name) ",
    "postgres://app:Pa55w0rdX@db/app ",
    "Authorization: Bearer Zq9vLm2Rt8Kp4XaB ",
    "mysql -u root -pS3cr3tPw ",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA ",
    "ENV PASSWORD Tr0ub4dor&3xQz!9 ",
    "AUTH ",
    "SECRET\t",
    "PASS",
    "the password is **`hU7kd82Lpq9`** ",
    "token-v2 Tr0ub4dor&3xQz!9 ",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc ",
    "12345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw ",
    "0123456789abcdef0123456789abcdef-us6 ",
    "sk_live_",
    "key",
    "pass",
    "==",
    "é",
    "\u017f",
    "\u212a",
    "\u0130",
    "?",
    "😀",
    " ",
    "\n",
    "=",
    '"',
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]
_TEXTS = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.text(max_size=10)), max_size=16
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_TEXTS)
def test_generated_texts_agree(text: str) -> None:
    native, pure = _both(text)
    assert native == pure


@pytest.mark.parametrize(
    "text",
    [
        # anchors back to back and overlapping: RE2 reports one of them
        "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9" * 3,
        "AKIAAKIAQZ7RT2MX4K5W6Y3J",
        "key=ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9",
        "password=password=hU7kd82Lpq9",
        # non-ASCII around and inside: RE2 sees "?" there
        "ключ: password = 'hU7kd82Lpq9' — ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9",
        "😀AKIAQZ7RT2MX4K5W6Y3J😀",
        "pass\u00e9word = 'hU7kd82Lpq9'",
        # the characters Python's case folding maps to ASCII: pure path
        "\u017fecret = 'hU7kd82Lpq9'",
        "\u212aEY = 'hU7kd82Lpq9'",
        # a window's far edge: a long match, then a key right after it
        "x" * 3000 + " key: " + "A1" * 40 + " AKIAQZ7RT2MX4K5W6Y3J",
        "ZXlK" + "QUJD" * 200 + " ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9",
        # the cased shapes: an upper-case name, its value after a bare space
        "ENV PASSWORD Tr0ub4dor&3xQz!9",
        "AUTH Tr0ub4dor&3xQz!9",
        "APITOKEN\tTr0ub4dor&3xQz!9",
        "SECRET  Tr0ub4dor&3xQz!9",
        "PASSPASSWORD Tr0ub4dor&3xQz!9",
        "😀 ключ AUTH Tr0ub4dor&3xQz!9 — PASSWORD is Tr0ub4dor&3xQz!9",
        "x" * 3000 + " AKIAQZ7RT2MX4K5W6Y3J TOKEN Tr0ub4dor&3xQz!9",
        # the shape after "is", "was" and ",", a separator anywhere in a name
        "The password is **`Tr0ub4dor&3xQz!9`**",
        "DB_PASSWORD is      'Tr0ub4dor&3xQz!9'",
        "api_key was\t\t\t\t`Tr0ub4dor&3xQz!9`",
        'password, **"Tr0ub4dor&3xQz!9"**',
        "db_apipassword Tr0ub4dor&3xQz!9",
        "Password-Prod  Tr0ub4dor&3xQz!9",
    ],
)
def test_prescan_edges_agree(text: str) -> None:
    native, pure = _both(text)
    assert native == pure


@pytest.mark.parametrize(
    "unit",
    ["token=", "key=a(", "password=ab.", "DB_PASSWORD ", 'secret="', "aa", "-us1"],
)
def test_adversarial_repetitions_agree(unit: str) -> None:
    text = unit * (20_000 // len(unit))
    native, pure = _both(text)
    assert native == pure


# -- the assignment shape's RE2 form ------------------------------------------

_SHAPE = re.compile(ASSIGN_SHAPE)
_LOOSE = re2.compile(f"(?i:{loosen(ASSIGN_SHAPE_PRESCAN)})")
_NAMES = st.sampled_from(
    ["password", "db_password", "apiKey", "token", "auth", "x-api-key", "secret"]
)
_OPS = st.sampled_from(
    ["=", " = ", ": ", ":", "=>", " ", "  ", '": "', " is ", ", ", ">", " | ",
     "**: ", ": |\n  ", '=\\"', " == ", "[0] = ", ": str = "]
)  # fmt: skip
_VALUE = st.lists(
    st.sampled_from([*"aZ9_-.$()[]=@|*\"'` \n;é?", "request.get(", "x.y"]),
    max_size=24,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(name=_NAMES, op=_OPS, value=_VALUE, lead=st.sampled_from(["", "_", ".", " "]))
def test_prescan_shape_matches_wherever_the_shape_does(
    name: str, op: str, value: str, lead: str
) -> None:
    for keyword in ("pass", "secret", "token", "key", "auth"):
        text = (lead + name + op + value).lower()
        at = text.find(keyword)
        if at == -1:
            continue
        after = at + len(keyword)
        if _SHAPE.match(text, after) is not None:
            # RE2 sees a non-ASCII character as "?" (offsets kept)
            data = text.encode("ascii", "replace").decode("ascii")
            assert _LOOSE.match(data, after) is not None


_UPPER_NAMES = st.sampled_from(["PASSWORD", "DB_PASSWORD", "APITOKEN", "AUTH", "KEY"])
_UPPER_OPS = st.sampled_from([" ", "  ", "\t", "[0] ", '" ', "] ", " is ", " = "])


@settings(max_examples=300, deadline=None)
@given(name=_UPPER_NAMES, op=_UPPER_OPS, value=_VALUE)
def test_the_cased_anchors_match_wherever_the_cased_shape_does(
    name: str, op: str, value: str
) -> None:
    """An upper-case keyword's anchor (its cased shape loosened, matched as
    written) matches wherever the rule's cased regex does."""
    text = name + op + value
    data = text.encode("ascii", "replace").decode("ascii")
    for keyword, cased, _ in NATIVE._cased_plan:
        anchor = re2.compile(_cased_anchor(keyword))
        for at in range(len(text)):
            if cased.match(text, at) is not None:
                assert anchor.match(data, at) is not None


def _cased_anchor(keyword: str) -> str:
    rules, token = NATIVE.rules, NATIVE._token
    cased = [entry for entry in NATIVE._cased_plan if entry[0] == keyword]
    (anchor,) = anchors_of(rules, token, [], cased)[-1:]
    return anchor


def test_the_cased_anchors_are_shaped() -> None:
    """Each upper-case keyword is anchored with its cased shape (not the bare
    keyword a dropped lookahead would leave), case-sensitive."""
    assert NATIVE._cased_plan
    for keyword, _, _ in NATIVE._cased_plan:
        anchor = re2.compile(_cased_anchor(keyword))
        assert anchor.match(f"{keyword} Tr0ub4dor&3xQz!9") is not None
        assert anchor.match(f"{keyword} = x") is None  # the lower-case shape's
        assert anchor.match(f"{keyword}\nvalue") is None
        assert anchor.match(f"{keyword} policy; more") is None  # under 8: prose
        assert anchor.match(f"{keyword.lower()} Tr0ub4dor&3xQz!9") is None


def test_the_prescan_shape_rejects_code_and_prose() -> None:
    """Selectivity: what keeps the pre-scan cheap on code and prose."""
    for text in (
        'token = request.headers.get("Authorization", "")',
        "if user.is_authenticated and not user.is_staff:",
        "the token rules are",
    ):
        low = text.lower()
        for keyword in ("token", "auth"):
            at = low.find(keyword)
            if at != -1:
                assert _LOOSE.match(low, at + len(keyword)) is None


def test_loosen_only_widens() -> None:
    assert loosen(r"a(?=b)c") == "ac"
    assert loosen(r"(?<!x)a(?!y)") == "a"
    assert loosen(r"(?P<q>['\"])v(?P=q)") == r"(?:['\"])v(?:['\"])"
    assert re2.compile(loosen(r"x(?!)")).search("x") is None  # never stays never
    assert loosen(r"(?(c)a|b)") == "(?:a|b)"
    assert loosen(r"(?(c)a)") == "(?:a|)"
    assert loosen(r"a{2,300}b{3}c{40}") == "a{2,}b{3}c{40,}"
    assert loosen(r"\w\Z") == r"[\w?]\z"
    assert loosen(r"a$") == r"a(?:$|\n)"  # Python's $ before a final line break
    pattern = re2.compile(loosen(r"[\s]x\sy"))
    assert pattern.search("\x0bx\x1fy") is not None  # Python's \s has these
    with pytest.raises(ValueError, match="unbalanced"):
        loosen("(a")


def test_import_does_not_load_re2() -> None:
    code = "import sys, aiinvariants, aiinvariants.filters; print('re2' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
