"""Red team of issue #13: values split by a decoded separator, keys as URL
path segments, Terraform defaults.

What got through after the change:

- the written-back pass recognised only the escapes of its own pattern, a
  copy of the canonical form's decoders that lagged behind them: a
  double-encoded entity (``&amp;#59;``, ``&amp;semi;`` — the canonical form
  peels ``amp;`` layers) and a named entity longer than ten characters
  (``&NonBreakingSpace;``, ``&MediumSpace;``, ``&DiacriticalGrave;``)
  decoded to a splitter and split the value: nothing was reported;
- a non-ASCII character the canonical form folds into a splitter
  (a fullwidth semicolon or at sign, the small semicolon, the Greek
  question mark, a parenthesized digit) is one value as written too: nothing was
  reported, and a URL password with a fullwidth at sign was masked only up
  to it, its rest shown;
- a key in a URL path more than about 250 characters after the scheme is
  masked by the one-shot check but streamed out in clear: its decision
  reads 2,048 characters back for the ``scheme://``, the stream keeps 257
  (a strict xfail: keeping more slows the prose stream);
- a Terraform variable whose default is a heredoc (``default = <<EOT``), or
  follows a nested block with a short ``{…}`` inside (a regex quantifier);
- JSON's escaped solidus (``postgres:\\/\\/admin:…@db``): the canonical form
  did not decode it, the URL's credentials went unreported;
- a splitter escaped with a backslash (a quote inside a string, ``\\!`` or
  ``\\;`` in a shell word) and a line break written ``\\u000a`` inside a
  string cut the value short;
- a key in a URL after a blob copy of the same text took the copy's memoized
  outcome (dropped as a blob).
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants._internal.canonical import canonical
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard
from aiinvariants.filters._base import canonical_of
from aiinvariants.filters._secret_written import (
    _FOLDS,
    SPLITTERS,
    decoded_splitters,
)

pytestmark = pytest.mark.usefixtures("secrets_engine")

FILTER = SecretsFilter()
LEFT, RIGHT = "Tr0ub", "dor!Qx9z"


def _streamed(pipeline: OutputPipeline, answer: str, size: int) -> str:
    guard = StreamGuard(pipeline)
    out = [guard.feed(answer[at : at + size]) for at in range(0, len(answer), size)]
    out.append(guard.close())
    return "".join(out)


# -- every decoder of the canonical form, not a copy of some -------------------

# (escape, what the canonical form decodes it to)
DECODED = [
    ("&amp;#59;", ";"),
    ("&amp;#x3B;", ";"),
    ("&amp;semi;", ";"),
    ("&amp;amp;#64;", "@"),
    ("&amp;Tab;", " "),
    ("&NonBreakingSpace;", " "),
    ("&MediumSpace;", " "),
    ("&VeryThinSpace;", " "),
    ("&DiacriticalGrave;", "`"),
    ("&amp;NonBreakingSpace;", " "),
]
# (character as written, what it folds to): shown as one character
FOLDED = [
    ("\uff1b", ";"),  # fullwidth semicolon
    ("\ufe54", ";"),  # small semicolon
    ("\u037e", ";"),  # Greek question mark
    ("\uff20", "@"),  # fullwidth commercial at
    ("\uff0f", "/"),  # fullwidth solidus
    ("\uff06", "&"),  # fullwidth ampersand
    ("\uff02", '"'),  # fullwidth quotation mark
    ("\u2474", "(1)"),  # parenthesized digit one
]
SITES = [
    "https://x.example/login?user=bob&password={}",
    'password = "{}"',
    "DB_PASSWORD={}",
    '{{"api_key": "{}"}}',
]


@pytest.mark.parametrize(("written", "char"), DECODED + FOLDED)
def test_the_table_is_what_the_canonical_form_does(written: str, char: str) -> None:
    canon = canonical_of(f"password={LEFT}{written}{RIGHT}")
    assert canon.cased == f"password={LEFT}{char}{RIGHT}"
    assert any(c in SPLITTERS for c in char)


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize(
    ("written", "_char"), DECODED + FOLDED, ids=[w for w, _ in DECODED + FOLDED]
)
def test_a_value_split_by_any_decoded_or_folded_splitter_is_found(
    site: str, written: str, _char: str
) -> None:
    text = site.format(LEFT + written + RIGHT)
    found = FILTER.scan(text)
    value_at = text.index(LEFT)
    end = value_at + len(LEFT + written + RIGHT)
    assert any(f.start <= value_at and end <= f.end for f in found), text


@pytest.mark.parametrize("at", ["&amp;#64;", "\uff20", "&amp;commat;"])
def test_a_url_password_with_a_disguised_at_sign_is_masked_whole(at: str) -> None:
    text = f"Connect with postgres://bob:{LEFT}{at}{RIGHT}@db.example.com:5432/app"
    redacted = OutputPipeline([SecretsFilter(action="redact")]).check(text).text
    assert LEFT not in redacted
    assert RIGHT not in redacted
    with pytest.raises(OutputBlocked) as caught:
        OutputPipeline([SecretsFilter()]).enforce(text)
    assert caught.value.code == "output_blocked"
    assert "url-credentials" in caught.value.rule_ids
    assert RIGHT not in str(caught.value)
    assert RIGHT not in repr(caught.value.findings)


@pytest.mark.parametrize("written", ["&amp;#59;", "\uff1b", "&NonBreakingSpace;"])
def test_streamed_like_one_shot(written: str) -> None:
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    answer = f"Use https://x.example/?user=bob&password={LEFT}{written}{RIGHT} ok.\n"
    one_shot = pipeline.check(answer).text
    assert RIGHT not in one_shot
    for size in (1, 3, 7, 64):
        assert _streamed(pipeline, answer, size) == one_shot


@pytest.mark.parametrize(
    "text",
    [
        # CJK prose: its fullwidth punctuation is punctuation, not a value
        "password\uff1a我的密码\uff0c不要告诉别人\uff08真的\uff09\uff1b谢谢",
        "这是一个例子\uff0c密码\uff08password\uff09是\uff1a不要分享",
        # a folded white space renders as white space: a phrase stays one
        f"password={LEFT}\u00a0{RIGHT}",
        f"password={LEFT}\u3000{RIGHT}",
        # placeholders written with folded characters stay placeholders
        "password=YOUR\uff1bAPI\uff1bKEY",
        "api_key=&lt;your&amp;NonBreakingSpace;key&gt;",
    ],
)
def test_prose_spaces_and_placeholders_stay_quiet(text: str) -> None:
    assert FILTER.scan(text) == []


def test_cjk_punctuation_opens_no_window() -> None:
    """Fullwidth punctuation between CJK characters is not written back:
    no second scan of CJK prose."""
    text = "你好\uff0c世界\uff1b这是\uff08一个\uff09测试\u3002" * 200
    assert decoded_splitters(canonical(text)) == []


def test_every_character_folded_to_a_splitter_is_looked_for() -> None:
    """The pre-check's list is the canonical form's folds (a test of the
    table: every non-ASCII character, outside white space, whose canonical
    form holds a splitter is listed, in the blocks where such characters
    live)."""
    blocks = [
        (0x80, 0x0800),
        (0x1700, 0x1800),
        (0x1F00, 0x3400),
        (0x4E00, 0x4F00),
        (0xFE00, 0x10000),
        (0x1D200, 0x1D300),
        (0x1F100, 0x1F200),
        (0xE0000, 0xE0080),
    ]
    splitters = SPLITTERS - frozenset(" \t")
    folded = re.compile(_FOLDS)
    for lo, hi in blocks:
        for code in range(lo, hi):
            char = chr(code)
            if 0xD800 <= code < 0xE000 or char.isspace():
                continue
            folds = any(c in splitters for c in canonical(char).cased)
            assert folds == (folded.match(char) is not None), hex(code)


# -- a key in a long URL path, streamed ----------------------------------------

_AL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _segments(size: int, seed: int) -> str:
    rnd = random.Random(seed)
    out = []
    while sum(len(s) + 1 for s in out) < size:
        out.append("".join(rnd.choice(_AL) for _ in range(40)))
    return "/".join(out)


def _deep_key_streamed(before: int, key: str) -> None:
    url = "https://x.example.com/" + _segments(before, before) + f"/{key}/"
    url += _segments(60, 7)
    answer = f"Open {url} now.\n"
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    one_shot = pipeline.check(answer).text
    assert key not in one_shot
    for size in (4, 64, 1000):
        assert _streamed(pipeline, answer, size) == one_shot, size


KEYS_IN_PATHS = ["AKIAQ2XK7ZL3MNB4V5WC", "glpat-Xq7Lm2Np9Rs4Tv6Wy8Za"]


@pytest.mark.parametrize("before", [40, 120])
@pytest.mark.parametrize("key", KEYS_IN_PATHS)
def test_a_key_in_a_url_path_is_streamed_like_one_shot(before: int, key: str) -> None:
    _deep_key_streamed(before, key)


@pytest.mark.xfail(
    strict=True,
    reason="a stream keeps SITE_CONTEXT (257) characters of left context, the "
    "scheme:// of a URL is looked for up to 2048 back: deeper in a path the "
    "stream judges the key a blob's and lets it out; a context that long "
    "breaks the prose hold-back (the stream step grows with the context)",
)
@pytest.mark.parametrize("before", [470, 1200])
@pytest.mark.parametrize("key", KEYS_IN_PATHS)
def test_a_key_deep_in_a_url_path_is_streamed_like_one_shot(
    before: int, key: str
) -> None:
    _deep_key_streamed(before, key)


# -- Terraform -----------------------------------------------------------------

PASSWORD = "Tr0ub4dor!Qx9zPw"


@pytest.mark.parametrize(
    "text",
    [
        f'variable "db_password" {{\n  default = <<EOT\n{PASSWORD}\nEOT\n}}',
        f'variable "db_password" {{\n  type      = string\n  sensitive = true\n'
        f"  default   = <<-EOT\n    {PASSWORD}\n  EOT\n}}",
    ],
)
def test_a_heredoc_default_is_found(text: str) -> None:
    assert "terraform-variable-default" in {f.rule_id for f in FILTER.scan(text)}
    redacted = OutputPipeline([SecretsFilter(action="redact")]).check(text).text
    assert PASSWORD not in redacted


def test_a_heredoc_placeholder_stays_quiet() -> None:
    text = 'variable "db_password" {\n  default = <<EOT\nchangeme\nEOT\n}'
    assert FILTER.scan(text) == []


@pytest.mark.xfail(
    strict=True,
    reason="two nested blocks before default do not fit the rule's width "
    "budget (MAX_MATCH = 400); needs a judge that reads the block's depth",
)
def test_a_default_after_two_validation_blocks_is_found() -> None:
    block = (
        "  validation {\n    condition     = length(var.db_password) >= 12\n"
        '    error_message = "At least twelve characters."\n  }\n'
    )
    text = f'variable "db_password" {{\n{block}{block}  default = "{PASSWORD}"\n}}'
    assert "terraform-variable-default" in {f.rule_id for f in FILTER.scan(text)}


@pytest.mark.parametrize(
    "condition",
    [
        'can(regex("^.{12,}$", var.db_password))',
        'length(regexall("[A-Z]{2,}", var.db_password)) > 0',
        'var.db_password != "${var.user}"',
    ],
)
def test_a_default_after_a_block_with_braces_inside_is_found(condition: str) -> None:
    """A validation's regex quantifier or an interpolation puts a short
    ``{…}`` inside the nested block."""
    text = (
        f'variable "db_password" {{\n  validation {{\n    condition     = {condition}\n'
        '    error_message = "Twelve characters at least."\n  }\n'
        f'  default = "{PASSWORD}"\n}}'
    )
    assert "terraform-variable-default" in {f.rule_id for f in FILTER.scan(text)}
    redacted = OutputPipeline([SecretsFilter(action="redact")]).check(text).text
    assert PASSWORD not in redacted


# -- JSON's escaped solidus ----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # PHP's json_encode and many Java encoders write every / as \/
        '{"dsn": "postgres:\\/\\/admin:Tr0ub4dor!Qx9z@db.example.com\\/app"}',
        '{"dsn": "postgres://admin:Tr0ub\\/dor!Qx9z@db.example.com/app"}',
        '{"dsn": "mysql:\\/\\/root:Tr0ub\\/dor!Qx9z@10.0.0.5:3306\\/prod"}',
    ],
)
def test_url_credentials_in_json_with_escaped_slashes_are_masked(text: str) -> None:
    assert "url-credentials" in {f.rule_id for f in FILTER.scan(text)}
    redacted = OutputPipeline([SecretsFilter(action="redact")]).check(text).text
    assert "dor!Qx9z" not in redacted
    for size in (1, 5, 64):
        pipeline = OutputPipeline([SecretsFilter(action="redact")])
        assert _streamed(pipeline, text, size) == redacted


def test_canonical_decodes_the_escaped_solidus() -> None:
    assert canonical("https:\\/\\/x.example\\/a").cased == "https://x.example/a"
    # an escaped backslash stays one
    assert canonical("C:\\\\Users").cased == "C:\\\\Users"


def test_a_key_in_a_url_after_the_same_key_in_a_blob_is_found() -> None:
    """The judged outcome of a site is reused where the text around it
    repeats (a memo keyed by about 70 characters before it), but whether a
    key glued by ``/`` is in a URL is read up to 512 characters back: the
    URL copy took the blob copy's outcome and was dropped."""
    key = "AKIAQ2XK7ZL3MNB4V5WC"
    before = "/".join(_segments(25, s) for s in range(3))
    after = _segments(700, 9)
    blob = f"{before}/{key}/{after}"
    text = f"{blob} and then open https://x.example.com/{blob} now"
    found = [f for f in FILTER.scan(text) if f.rule_id == "aws-access-key-id"]
    url_copy = text.index(key, text.index("https://"))
    assert [f.start <= url_copy < f.end for f in found] == [True]


@pytest.mark.parametrize(
    "unit",
    [
        "1:///AKIAQ2XK7ZL3MNB4V5WC/",
        "://AKIAQ2XK7ZL3MNB4V5WC/",
        "a://b/AKIAQ2XK7ZL3MNB4V5WC/",
    ],
)
def test_url_dense_keys_stay_linear(unit: str) -> None:
    """Every site of a key glued by ``/`` looks for a ``scheme://`` before
    it (for the memo too): a bounded look, at C speed."""
    import time

    timings = []
    for size in (40_000, 160_000):
        text = unit * (size // len(unit))
        started = time.perf_counter()
        FILTER.scan(text)
        timings.append(time.perf_counter() - started)
    assert timings[1] < 8 * timings[0] + 0.2


@pytest.mark.parametrize(
    "text",
    [
        '{"password": "Tr0ub\\u000ador!Qx9z"}',
        '{"password": "Tr0ub\\u000Ddor!Qx9z"}',
        "password = 'Tr0ub\\x0ador!Qx9z'",
    ],
)
def test_a_line_break_escaped_in_a_string_is_one_value(text: str) -> None:
    """``\\u000a`` in a JSON or code string is shown as written (like
    ``\\n``, which the canonical form keeps): one value, not two lines."""
    found = FILTER.scan(text)
    at = text.index(LEFT)
    assert any(f.start <= at and text.index(RIGHT) + len(RIGHT) <= f.end for f in found)


_FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})
_BOLD = str.maketrans(
    {
        **{chr(ord("A") + i): chr(0x1D400 + i) for i in range(26)},
        **{chr(ord("a") + i): chr(0x1D41A + i) for i in range(26)},
        **{chr(ord("0") + i): chr(0x1D7CE + i) for i in range(10)},
    }
)


@pytest.mark.parametrize("table", [_FULLWIDTH, _BOLD], ids=["fullwidth", "bold"])
@pytest.mark.parametrize("char", [";", "@", "&"])
def test_a_value_written_whole_in_lookalikes_is_one_value(
    table: dict[int, str], char: str
) -> None:
    """The folded splitter's neighbours are themselves folded (a password
    written all in fullwidth or mathematical letters): still one value."""
    left, right = LEFT.translate(table), RIGHT.translate(table)
    value = left + char.translate(_FULLWIDTH) + right
    for text in (
        f"password={value}",
        f"postgres://bob:{value}@db.example.com/app",
    ):
        redacted = OutputPipeline([SecretsFilter(action="redact")]).check(text).text
        assert left not in redacted, text
        assert right not in redacted, text


# -- a splitter escaped with a backslash ----------------------------------------

ESCAPED_FOUND = [
    # a quote escaped inside a string: one value
    'password = "Tr0ub\\"dor!Qx9z"',
    '{"password": "Tr0ub\\"dor!Qx9z"}',
    'variable "db_password" {\n  default = "Tr0ub\\"dor!Qx9z"\n}',
    'gh secret set DB_PASSWORD --body "Tr0ub\\"dor!Qx9z"',
    # a shell word: an escaped '!', space or ';' is the word's
    "export DB_PASSWORD=Tr0ub\\!dor!Qx9z",
    "export DB_PASSWORD=Tr0ub\\ dor!Qx9z",
    "DB_PASSWORD=Tr0ub\\;dor!Qx9z",
]


@pytest.mark.parametrize("text", ESCAPED_FOUND)
def test_a_value_with_an_escaped_splitter_is_found(text: str) -> None:
    found = FILTER.scan(text)
    at, end = text.index(LEFT), text.index(RIGHT) + len(RIGHT)
    assert any(f.start <= at and end <= f.end for f in found), text
    redacted = OutputPipeline([SecretsFilter(action="redact")]).check(text).text
    assert RIGHT not in redacted


@pytest.mark.parametrize(
    "text",
    [
        'key_path = "C:\\\\Users\\\\bob\\\\keys\\\\id_rsa"',
        "secret_file=C:\\secrets\\prod\\token.txt",
        'password = "\\"quoted\\""',
        "password = 'it\\'s a secret'",
        'token = "\\$HOME"',
        "password=your\\ password\\ here",
    ],
)
def test_escaped_characters_in_paths_and_phrases_stay_quiet(text: str) -> None:
    assert FILTER.scan(text) == []


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(
            ["a", "Z", "9", " ", ";", "%3B", "&amp;#59;", "&semi;", "\\u0040",
             "\\/", "\uff1b", "\u2474", "\u200b", "e\u0301", "%E2%80%83", "\\"]
        ),
        max_size=30,
    )
)  # fmt: skip
def test_property_index_is_the_inverse_of_span(parts: list[str]) -> None:
    """``Canonical.index`` (original position to canonical index) is where
    ``span`` starts: the first canonical character whose original starts
    there."""
    text = "".join(parts)
    canon = canonical(text)
    first: dict[int, int] = {}
    for at in range(len(canon.cased)):
        first.setdefault(canon.span(at, at + 1)[0], at)
    for origin, at in first.items():
        assert canon.index(origin) == at, (text, origin)
