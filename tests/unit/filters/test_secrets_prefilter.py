"""The SecretsFilter pre-scan only skips work: its findings are those of
trying every rule at every occurrence of each of its keywords.

Context rules are tried only where their ``shape`` (a C-speed regex over the
lower-cased text) matches after the keyword. A shape that is stricter than
what the rule and its judge accept would silently lose credentials, so the
reference here drops every shape and tries each keyword occurrence, and the
two must agree on labelled corpora, generated credentials and generated
assignment syntaxes.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants.filters import SecretsFilter
from aiinvariants.filters._base import Finding

# Both candidate searches: the RE2 pre-scan and the pure-Python one.
pytestmark = pytest.mark.usefixtures("secrets_engine")

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
FAST = SecretsFilter()
REFERENCE = SecretsFilter()
# Every keyword occurrence is tried (no shape): the slow, obviously complete scan.
REFERENCE._context_plan = [(k, None, i) for k, _, i in REFERENCE._context_plan]
REFERENCE._use_native = False  # the pure-Python candidate search, every keyword
REFERENCE._memo = False  # every site judged anew, not once per distinct window
# No judging budget: the reference tries sites the shapes skip, so it would
# run out of a budget sooner; where the fast scan runs out, it must block.
REFERENCE._budget = 10**9


def _same(text: str) -> tuple[list[Finding], list[Finding]]:
    return FAST.scan(text), REFERENCE.scan(text)


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


def test_reference_differs_from_the_fast_plan() -> None:
    """The reference really tries more: otherwise the comparison proves nothing."""
    assert any(shape is not None for _, shape, _ in FAST._context_plan)
    assert all(shape is None for _, shape, _ in REFERENCE._context_plan)


def test_in_repo_corpus_and_fresh_cases_agree() -> None:
    texts = _texts(FIXTURES / "secrets_corpus.jsonl")
    texts += [r["text"] for r in _generator().fresh_cases(13, per_rule=4)]
    found = 0
    for text in texts:
        fast, reference = _same(text)
        assert fast == reference, text[:0]  # never print a credential
        found += bool(fast)
    assert found > len(texts) // 4  # the cases do hold credentials


@pytest.mark.parametrize(
    ("folder", "name"),
    [("secrets-detect-secrets", "cases.jsonl"), ("secrets-gitleaks", "cases.jsonl.gz")],
)
def test_public_corpora_agree(folder: str, name: str) -> None:
    path = CORPORA / folder / name
    if not path.exists():
        pytest.skip(f"{folder} corpus absent")
    differ = sum(1 for text in _texts(path) if FAST.scan(text) != REFERENCE.scan(text))
    assert differ == 0


_NAMES = st.sampled_from(
    ["password", "DB_PASSWORD", "db.password", "apiKey", "api_key", "secret",
     "client_secret", "token", "authToken", "auth", "pwd", "credential",
     "--password", "x-api-key", "AUTH_TOKEN", "passwd", "key"]
)  # fmt: skip
_OPS = st.sampled_from(
    ["=", " = ", ": ", ":", "=>", " := ", " ", "  ", '": "', "': '", " is ",
     " was ", ", ", ">", " | ", "**: ", ": |\n  ", '=\\"', " == ", "[0] = "]
)  # fmt: skip
_VALUE_CHARS = st.sampled_from(list("aZ9_-.+/=@$!#%;<>\\\"'`()[] \n|*&"))
_QUOTES = st.sampled_from(["", '"', "'", "`", 'r"', '@"', 'b"', '\\"'])


@settings(max_examples=300, deadline=None)
@given(
    before=st.sampled_from(["", "x ", "set ", "ENV ", "if ", "<", "  - "]),
    name=_NAMES,
    op=_OPS,
    quote=_QUOTES,
    value=st.lists(_VALUE_CHARS, min_size=0, max_size=14).map("".join),
    tail=st.sampled_from(["", '"', "'", "\n", ".", ")", " and more"]),
)
def test_generated_assignments_agree(
    before: str, name: str, op: str, quote: str, value: str, tail: str
) -> None:
    """Values around the 8-character bound, in every assignment syntax."""
    text = before + name + op + quote + value + tail
    fast, reference = _same(text)
    assert fast == reference


@pytest.mark.parametrize(
    "unit",
    ["token=", "key=a(", "password=ab.", "DB_PASSWORD ", 'secret="', "api_key: x[",
     "password.", "auth=$a.b("],
)  # fmt: skip
def test_adversarial_repetitions_agree(unit: str) -> None:
    """Keywords back to back, each followed by what the code check reads:
    every occurrence is decided within a bounded window (the suite would
    not finish if one scan read to the end of the text per occurrence)."""
    text = unit * (20_000 // len(unit))
    fast, reference = _same(text)
    if [f.rule_id for f in fast] == ["secrets-scan-limit"]:
        # past the judging budget the text is blocked whatever it holds (the
        # one finding spans it, like a failing filter's)
        assert fast[0].action == "block"
        assert fast[0].span == (0, len(text))
    else:
        assert fast == reference
        assert all(f.end - f.start <= FAST.max_finding for f in fast)


@pytest.mark.parametrize(
    "text",
    [
        "dynatraceToken = dt0c01.461oumyw8jx042f9p13spaop.ln3z6j3r747j9u4mv1grsjcf31",
        "harness_token: pat.v88il4rra86vcwa1ynbvyi.9sbhlpt9k0ch3nabqhhpd0pz.jn75k2",
        "yandexToken=t1.C.Aenhx1Odf95uIWJ8BfStQRro8pUhLIfaIJruJ-HKstcN8oE1RRkfp",
        "password = Xq9.Zr8KpL2w",
    ],
)
def test_dotted_tokens_with_digits_are_found(text: str) -> None:
    """The pre-scan once took any ``name.`` value for code and skipped it."""
    assert FAST.scan(text)


@pytest.mark.parametrize(
    "text",
    [
        "KeyPair = X25519.KeyPair",
        "token = request.headers.get(name)",
        "api_key: Optional[str] = None",
        "db-password: ENC[AES256_GCM,data:O+5l4g==,iv:c/dS4BCBMbnKsXYuzBuCuVQt8RV9"
        "bOv5HgdpL+iwmns=,tag:KkQfh6OymvCt4uC13p318g==,type:str]",
    ],
)
def test_code_and_ciphertext_are_not_credentials(text: str) -> None:
    """The judge, not only the pre-scan, dismisses these."""
    assert FAST.scan(text) == REFERENCE.scan(text) == []
