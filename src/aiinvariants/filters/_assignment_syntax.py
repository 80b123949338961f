"""The syntax of ``name = value`` for the assignment rule (part of the ruleset).

Split from :mod:`aiinvariants.filters._secret_rules` to keep modules small:
the pieces of the ``generic-credential-assignment`` regex (what may stand
between a key name, its operator and its value) and the *shape*, its C-speed
pre-scan over the lower-cased text. The shape may only skip occurrences the
rule and its judge would dismiss; tests/unit/filters/test_secrets_prefilter.py
checks that against trying every keyword occurrence.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Callable
from functools import lru_cache

__all__ = [
    "ASSIGN_ANCHORS",
    "ASSIGN_SHAPE",
    "ASSIGN_SHAPE_PRESCAN",
    "ASSIGN_SHAPE_UPPER",
    "ASSIGN_SHAPE_UPPER_PRESCAN",
    "BETWEEN",
    "CHAR_QUOTES",
    "CLOSERS",
    "DECODED",
    "FENCE_REACH",
    "LANGUAGES",
    "NAME_RHS",
    "PAD",
    "STRING_PREFIX",
    "VALUE_LEAD",
    "canonical_fences",
    "fence_language",
    "fence_signature",
    "in_code",
]

# A line break as the canonical form writes it: CRLF becomes two line feeds
# (``\r`` folds to ``\n``), so ``\r?\n`` never matched a Windows line
# ending; one blank line is allowed for the same reason.
_BREAK = r"(?:\r?\n){1,2}"
# Between the key name and the operator: a Go type (``var authToken string
# =``), a type annotation before a quoted value (``apiKey: string = "…"``,
# ``password: Optional[str] = "…"``), or a name/value pair whose value key
# follows (``- name: API_TOKEN`` then ``value: …``; ``"name": "DB_PASSWORD",
# "value": …``). Lower-case: the rule's regex is case-insensitive.
_BETWEEN = (
    r"(?:\s{1,3}[a-z]{3,8}(?=\s{0,3}:?=)"
    r"|[ \t]{0,3}:[ \t]{0,3}[a-z_&][\w&\[\]<>.,|? ]{0,40}?"
    r"(?=[ \t]{0,3}=[ \t]{0,3}[bruf]{0,2}\\?[\"'`])"
    r"|\\?[\"']?(?:[ \t]{0,3}" + _BREAK + r"[ \t]{0,16}-?[ \t]{0,3}"
    r"|[ \t]{0,3},[ \t]{0,3})"
    r"[\"']?value[\"']?(?=[ \t]{0,3}[:=]))?"
)
# Before a quoted value: C#'s verbatim @"…", Python's b"…" r"…" f"…", and
# the backslash of JSON written inside a string (\"password\": \"…\").
_STRING_PREFIX = r"(?:@|[bruf]{1,2}(?=\\?[\"'`]))?\\?"
# Between the operator and the value: Markdown emphasis closing a bold key
# (``**Password:** value``), a YAML block scalar header (``password: |``
# then the value indented on the next line), or a line break and indentation
# before a quoted value (``password:`` then ``"…"`` indented on the next line).
_VALUE_LEAD = (
    r"(?:\*{1,2}[ \t]{0,8}|[|>][-+]?[0-9]?[ \t]{0,8}" + _BREAK + r"[ \t]{1,16}"
    r"|" + _BREAK + r"[ \t]{1,16}(?=(?:@|[bruf]{1,2})?\\?[\"'`]))?"
)
_ASSIGN_ANCHORS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
# What must follow a credential keyword in the lower-cased text before the
# assignment rule is tried: the rest of a name, an operator, and the start
# of a value that is not code (``token = request.headers.get(...)``). The
# name is taken whole, as an atomic group would (a lookahead and a
# backreference): no backtracking into it, so a miss costs a few steps.
# What may close a key name: quotes, brackets, a tag, Markdown emphasis, a
# JSON escape; a Markdown code span (`password` = `…`) only right before
# its operator, so a list of names in prose ("`token`, `key`") is not tried.
_CLOSERS = r"(?:[\"'\]>)*\\]{0,3}|`(?=\s{0,3}[:=|]))"
# A Markdown table cell ("| password | Tr0ub4dor&3 |"): the "|" is an
# operator like the others, and the 8-character bound below skips cells of
# short words. (A cell that had to hold a digit or a symbol and close with
# "|" hid values the judge reports: letters-only passwords, quoted cells.)
_TABLE_CELL = r"\|"
# A name written like a config key (DB_PASSWORD, db.password, --token): a
# separator anywhere in the name (the judge looks at the whole name, the
# part glued before the keyword included: db_apipassword, token-v2,
# secret_). Only such a name may take its value after a bare space; prose
# ("the token rules") is not tried at all, which keeps ordinary text cheap.
# A keyword glued to a name part before it is tried: that part may hold
# the separator, and a fixed-width look-behind cannot see past it.
_CONFIG_LIKE = (
    "(?:(?P<cfg>"
    + "|".join(rf"(?<=[a-z0-9_.\-$@]{re.escape(k)})" for k in _ASSIGN_ANCHORS)
    + r"|(?=[a-z0-9]{0,40}[_.\-]))|)"
)
# The judge dismisses a value shorter than 8 characters (``_too_short``), and
# the rule's unquoted value is a run of the class below, its quoted value a
# run of non-quotes: requiring 8 of them here only skips, at C speed,
# occurrences the judge would dismiss (``user.is_authenticated and``), and a
# differential test (tests/unit/filters/test_secrets_prefilter.py) checks that
# findings are those of trying every keyword occurrence.
_QUOTED_8 = r"[^\"'`\n]{8}"
_BARE_8 = r"(?=[^\s\"'`;<>\\]{8})"
# Code, not a value (``request.headers.get(``, ``settings.api_key``): a
# value, ending within 200 characters, made of digit-free names joined by
# dots, maybe ending in a call or subscript; the judge dismisses exactly these
# (``_a_variable``, ``_code``). A dotted value with digits
# (``sc_wcpf7sx.e8mc…``) is a token and is tried.
_V = r"[^\s\"'`;<>\\]"
_NOT_CODE = (
    rf"(?!(?={_V}{{0,200}}+(?!{_V}))[a-z_$][a-z_$]{{0,200}}(?:\.[a-z_$]{{1,200}})"
    rf"{{0,100}}(?:[(\[][^\s\"'`;<>\\0-9]{{0,200}}|\.)?(?!{_V}))"
)


# Between a key name and its operator: a few blanks or a line break, or the
# padding that aligns a block of keys ("password        = …", gofmt, TOML,
# YAML); after the operator, up to 32 blanks (aligned values). Counting 8
# and 3 let "password =" and 9+ spaces (or 4+ before the "=") hide a value.
PAD = r"(?:\s{0,3}|[ \t]{4,16}(?=[=:]))"


def _assign_shape(bare: str, after_space: str) -> str:
    """The shape, given how it tests a bare value after an operator and a
    bare value after a space (the two places the "not code" test sits)."""
    return (
        _CONFIG_LIKE
        + r"(?=(?P<rest>[a-z0-9_.-]{0,40}))(?P=rest)(?:\[\d{0,4}\])?"
        + _CLOSERS
        + _BETWEEN
        + PAD
        + r"(?:(?:={1,3}|!={1,2}|:{1,3}=|[?.+]=|=>|:|"
        + _TABLE_CELL
        + r")[ \t]{0,32}"
        + _VALUE_LEAD
        + _STRING_PREFIX
        + r"(?:[\"'`]"
        + _QUOTED_8
        + "|"
        + bare
        + r")|,\s{0,3}[ \t]{0,32}"
        + _VALUE_LEAD
        + _STRING_PREFIX
        + r"[\"'`]"
        + _QUOTED_8
        # the rule's "is" takes what its "=" takes after it: up to 32 blanks, a
        # Markdown emphasis or a block header ("The password is **`…`**")
        # ">" (an element's text) and "=>" take up to 16 blanks or line
        # breaks after them, as the rule does (its "(?<=>)\s{0,16}")
        + r"|=?>\s{0,16}[^<\s]|\s(?:is|was)\s[ \t]{0,32}"
        + _VALUE_LEAD
        + _STRING_PREFIX
        + r"[\"'`]"
        + _QUOTED_8
        + r"|\s[\"'`]"
        + _QUOTED_8
        + r"|[ \t]{1,3}(?:@|[bruf]{1,2})\\?[\"'`]"
        + _QUOTED_8
        + r"|(?(cfg)(?<=\S)[ \t]{1,3}(?!(?:is|was)\s)"
        + after_space
        + r"|(?!)))"
    )


_ASSIGN_SHAPE = _assign_shape(
    _NOT_CODE + _BARE_8 + r"[^\s\"'`;<>=\\]",
    _NOT_CODE + r"(?:" + _BARE_8 + r"|(?=[bruf@]{1,2}\\?[\"'`]))[^\s\"'`;<>=\\|*]",
)


def _not_code(first: str) -> str:
    """A bare value that is not code, as a regex without lookarounds (for the
    RE2 pre-scan, which has none): it begins with a character a name cannot
    begin with; or a name is followed by a character no code value has, by
    ``..``, by ``.(``, or by a call whose argument has a digit; or it is
    longer than the "not code" test reads (more than 200 characters; any
    run over 60 is let through: this only has to accept at least as much).
    ``first``: the characters the value may not begin with."""
    return (
        rf"(?:[^\s\"'`;<>\\a-z_$.{first}]|\.|[a-z_$][a-z_$.]*"
        r"(?:[^\s\"'`;<>\\a-z_$.(\[]|\.\.|\.[(\[]|[(\[][^\s\"'`;<>\\0-9]*[0-9])"
        rf"|[^\s\"'`;<>\\{first}][^\s\"'`;<>\\]{{60,}})"
    )


ASSIGN_SHAPE_PRESCAN = _assign_shape(_not_code("="), _not_code("=|*"))
"""A superset of :data:`ASSIGN_SHAPE` for the RE2 pre-scan (it still has
lookarounds, which :func:`aiinvariants.filters._prescan.loosen` drops; the
"not code" tests are positive here). A property test checks that it matches
wherever the shape does."""


# The judge takes a bare space after an upper-case name with no separator
# (``ENV PASSWORD value``, ``AUTH value``: ``name.isupper()``), which the
# lower-cased text above cannot tell from prose ("the password manager"):
# this shape is run over the text as written, after the upper-case keyword.
def _assign_shape_upper(value: str) -> str:
    """The upper-case shape, given how it tests the value's start."""
    return (
        r"(?=[A-Z0-9]{0,40}"
        r"(?:\[\d{0,4}\])?[\"'\]>)*\\]{0,3}[ \t]{1,3}(?!(?:is|was)\s)" + value + ")"
    )


_ASSIGN_SHAPE_UPPER = _assign_shape_upper(_BARE_8 + r"[^\s\"'`;<>=\\|*]")

ASSIGN_SHAPE_UPPER_PRESCAN = _assign_shape_upper(r"[^\s\"'`;<>=\\|*][^\s\"'`;<>\\]{7}")
""":data:`ASSIGN_SHAPE_UPPER` for the RE2 pre-scan: the same test with the
value's 8 characters consumed, not looked ahead at (a dropped lookahead
would let every upper-case keyword and word through: "PASSWORD policy")."""

ASSIGN_ANCHORS = _ASSIGN_ANCHORS
ASSIGN_SHAPE_UPPER = _ASSIGN_SHAPE_UPPER
ASSIGN_SHAPE = _ASSIGN_SHAPE
BETWEEN = _BETWEEN
CLOSERS = _CLOSERS
STRING_PREFIX = _STRING_PREFIX
VALUE_LEAD = _VALUE_LEAD


# -- the language of the fenced code block a site is in ---------------------
#
# An answer says which language a snippet is in: the info string of the
# Markdown code fence around it (```python, ```yaml). The same line means
# different things in different languages: ``password = Xk9mP2vLq7`` sets a
# value in YAML, an .env file or a shell script, and copies a *variable* in
# Python, Go or JavaScript, where a string literal needs quotes; and
# ``'…'`` is a string in Python but one character in C or Java.
#
# Each row: the info-string words (what writers and highlighters use), then
# what an unquoted right-hand side is ("name": an identifier or an
# expression; "literal": the value itself), then what single quotes delimit
# ("char": one character; "string"). A language absent from the table, and
# a site outside any fence, keep the language-free judgement (the
# unquoted value is judged as a literal, single quotes as a string).
_TABLE: tuple[tuple[str, str, str], ...] = (
    ("python py py3 python3 pyi ipython", "name", "string"),
    ("javascript js jsx mjs cjs node typescript ts tsx", "name", "string"),
    ("ruby rb php perl pl lua r julia dart groovy", "name", "string"),
    ("apex cls hcl terraform tf sql powershell ps1 pwsh", "name", "string"),
    ("elixir ex exs haskell hs clojure fsharp vb vbnet swift", "name", "string"),
    ("c h cpp c++ cxx cc hpp csharp cs c# objectivec objective-c objc", "name", "char"),
    ("java kotlin kt kts scala go golang rust rs", "name", "char"),
    ("yaml yml ini cfg conf config toml properties env dotenv", "literal", "string"),
    ("sh bash zsh shell console terminal dockerfile makefile", "literal", "string"),
    ("nginx apache xml html text txt plaintext http", "literal", "string"),
)
LANGUAGES: dict[str, tuple[str, str]] = {
    word: (rhs, single) for words, rhs, single in _TABLE for word in words.split()
}
"""Info-string word -> (what an unquoted right-hand side is, what single
quotes delimit). Documented in docs/output-filters.md."""

NAME_RHS: frozenset[str] = frozenset(k for k, v in LANGUAGES.items() if v[0] == "name")
"""Languages where an unquoted right-hand side is a name, not a value."""

CHAR_QUOTES: frozenset[str] = frozenset(
    k for k, v in LANGUAGES.items() if v[1] == "char"
)
"""Languages where single quotes delimit one character, not a string."""

FENCE_REACH = 256
"""How far before a site (in characters) its fence's opening line may start.

Bounded, so a finding still depends only on a fixed window around it (the
filter's ``context``): a stream, which sees a bounded window, decides as the
one-shot check does. A site farther from its fence is judged without the
language (as outside a fence: the stricter judgement)."""

# A fence line: up to 12 blanks (a fence inside a list item), three or more
# backticks or tildes, then the info string's first word. It must end before
# the site: the site is on a later line than its fence.
_FENCE = re.compile(
    r"(?m)^([ \t]{0,12})(`{3,}|~{3,})[ \t]{0,8}\{?\.?([^\s`{}.,]*)([^\n]*)\n"
)


def fence_signature(
    text: str, at: int, reach: int = FENCE_REACH
) -> tuple[int, str] | None:
    """The last fence line that starts within ``reach`` characters before
    ``at`` and ends before it: (its distance from ``at``, its info string's
    first word, lower-cased; "" for a bare fence, which closes a block or
    opens one without a language, and for a line a renderer does not take
    for a fence: a backtick in a backtick fence's info string makes it an
    inline code span). None: no fence line.

    Reads ``text[at - reach - 1 : at]`` only (the character before the
    reach tells whether the reach starts a line)."""
    last = _last_fence(text, at, reach)
    if last is None:
        return None
    return at - last.start(), _info_word(last)


class _Decoded(threading.local):
    """The canonical positions the scan in progress decoded (per thread, not
    a ``ContextVar``: see ``_secret_sites._Before``)."""

    value: tuple[int, ...] = ()


DECODED = _Decoded()
"""The positions, in the text being scanned, of the characters that open
or close a string or a comment (quotes, ``#``, ``/``, a line break…) which
the canonical form decoded (``&quot;``, ``%22``, ``&#10;``): the answer
does not have them. A site after one in its block is not read as code (the
string it is in would look closed). Set by the scan
(:func:`canonical_fences`); sorted."""

_SIGNIFICANT = frozenset("\"'`#/*-!%$[]{}()<>=@\n")


def canonical_fences(
    cased: str, changed: Callable[[int, int], list[int]]
) -> tuple[str, tuple[int, ...]]:
    """What the canonical form changed where a judge reads a block's
    language: ``cased`` (a canonical form; ``changed(start, end)``: its
    positions in the span whose character the original does not have) with
    the fence lines only the canonical form has blanked, and the
    :data:`DECODED` positions.

    A fence line whose indentation, fence or info word the canonical form
    changed (fullwidth or zero-width-split backticks, a Cyrillic "python",
    no-break spaces before it) is no fence to a renderer, so it names no
    language (blanked: same length, offsets kept). Read only after a fence
    line with a language, as far as a site's key may follow it."""
    if "``" not in cased and "~~" not in cased:
        return cased, ()
    out: list[str] | None = None
    decoded: set[int] = set()
    for m in _FENCE.finditer(cased):
        if not m.group(3):
            continue
        found = changed(m.start(), m.start() + FENCE_REACH + 48)
        if not found:
            continue  # the common case: nothing folded there
        if found[0] < m.end(3):
            out = out if out is not None else list(cased)
            out[m.start() : m.end(3)] = " " * (m.end(3) - m.start())
            continue
        decoded.update(p for p in found if cased[p] in _SIGNIFICANT)
    text = cased if out is None else "".join(out)
    return text, tuple(sorted(p for p in decoded if text[p] in _SIGNIFICANT))


def _last_fence(text: str, at: int, reach: int) -> re.Match[str] | None:
    lo = max(0, at - reach)
    if text.find("``", lo, at) == -1 and text.find("~~", lo, at) == -1:
        return None  # the common case, decided in C
    last = None
    for last in _FENCE.finditer(text, lo, at):  # noqa: B007 (the last one)
        pass
    return last


def _open_block(text: str, at: int, reach: int) -> re.Match[str] | None:
    """The opening fence line of the block open at ``at``, reading the fence
    lines that start within ``reach`` before it as CommonMark does: a line
    with an info string never closes a block (```` ```python ```` inside an
    open block is its text); a bare one of the same character, at least as
    long, closes it. A bare line first in the reach, which does not start
    at the text's start, is taken for the close of a block opened before
    the reach (the common case: a long block, then another)."""
    lo = max(0, at - reach)
    if text.find("``", lo, at) == -1 and text.find("~~", lo, at) == -1:
        return None  # the common case, decided in C
    opener: re.Match[str] | None = None
    for k, m in enumerate(_FENCE.finditer(text, lo, at)):
        bare = not m.group(3) and not m.group(4).strip()
        if opener is None:
            span = _info_word(m) != m.group(3).lower()  # ```python``` is text
            if not span and not (bare and k == 0 and lo > 0):
                opener = m
        elif (
            bare
            and m.group(2)[0] == opener.group(2)[0]
            and len(m.group(2)) >= len(opener.group(2))
        ):
            opener = None
    return opener


def _info_word(fence: re.Match[str]) -> str:
    if fence.group(2)[0] == "`" and "`" in fence.group(4):
        return ""  # ```python``` is a code span, not a fence
    return fence.group(3).lower()


def fence_language(text: str, at: int) -> str:
    """The language ``at`` is *code* in: the info string of the fenced code
    block it is in ("" outside a fence, in a fence without a language, past
    :data:`FENCE_REACH`, and wherever the block's text is not code).

    Not code, so "" (the stricter, language-free judgement): a site in a
    comment or a string literal of the block (:func:`in_code`: a
    connection string passed to ``connect("…")``, ``# password: …``, a
    docstring), and a site a line indented less than an indented fence has
    come before (a list item's fence: an unindented line leaves the item,
    and its block with it)."""
    last = _open_block(text, at, FENCE_REACH)
    if last is None:
        return ""
    language = _info_word(last)
    if not language:
        return ""
    decoded = DECODED.value
    if decoded:  # a quote or a break the answer does not have, up to the
        # site (and in its key, read when a quote opens it: "password")
        k = bisect_left(decoded, last.end())
        end = at + 48 if text[at - 1 : at] in ("'", '"', "`") else at
        if k < len(decoded) and decoded[k] < end:
            return ""
    body = text[last.end() : at]
    indent = _indent(last.group(1))
    if indent:
        *before, site = body.split("\n")
        if _indent(site) < indent or any(
            line.strip() and _indent(line) < indent for line in before
        ):
            return ""
    return language if in_code(body, text[at : at + 48], language) else ""


def _indent(line: str) -> int:
    line = line.expandtabs(4)
    return len(line) - len(line.lstrip())


# What opens a comment or a string in a language of the table, and what
# closes it: a site after one that is still open is text, not code. The
# common set is read for every language (a "#" is a comment in Python and
# a preprocessor line in C): reading too much as text only keeps the
# stricter judgement. A double-quoted string may run over lines (Rust, PHP,
# Ruby, C#'s @"…", PowerShell); a single-quoted one ends with its line (an
# apostrophe is also a lifetime, a prime, a quote in Lisp, a VB comment).
_COMMON: tuple[tuple[str, str], ...] = (
    ('"""', '"""'), ("'''", "'''"), ("/*", "*/"), ("//", "\n"), ("--", "\n"),
    ("#", "\n"), ('"', '"'), ("'", "'"), ("`", "`"),
)  # fmt: skip
_HEREDOC = r"<<<?[-~]?[ \t]?(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1"
_EXTRA: dict[str, tuple[tuple[str, str], ...]] = {}
for _words, _pairs in (
    ("lua", (("--[[", "]]"), ("[[", "]]"))),
    ("haskell hs", (("{-", "-}"),)),
    ("fsharp", (("(*", "*)"),)),
    ("powershell ps1 pwsh", (("<#", "#>"), ('@"', '"@'), ("@'", "'@"))),
    ("ruby rb", (("=begin", "=end"), ("<<", ""))),
    ("php perl pl hcl terraform tf", (("<<", ""),)),
    ("cpp c++ cxx cc hpp", (('R"(', ')"'),)),
    ("rust rs", (('r#"', '"#'),)),
):
    for _word in _words.split():
        _EXTRA[_word] = _pairs


@lru_cache(maxsize=64)
def _lexer(language: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """The openers of ``language`` (its own first) as one regex, and what
    closes each ("" for a heredoc: the line its word is alone on)."""
    pairs = _EXTRA.get(language, ()) + _COMMON
    closes = dict(pairs)
    alts = [_HEREDOC if o == "<<" else re.escape(o) for o, _ in pairs]
    return re.compile("|".join([_SHELL_LINE, *alts, "\n"])), closes


# A line that is a shell command or a notebook magic, not code: IPython's
# ``!cmd`` and a prompt (``$ cmd``), text to the line's end; ``%env X=…``
# and ``%%bash``, text to the block's end (the stricter reading: the
# canonical form decodes ``%%ba`` as a percent escape).
_SHELL_LINE = r"(?m:^[ \t]*(?:[!%]|\$[ \t]))"


def in_code(body: str, after: str = "", language: str = "") -> bool:
    """Whether the end of ``body`` (a code block's text up to a site) is
    code: no comment, string, docstring or heredoc open there. A quote right
    before the site that closes after its key name (``{"password": …}``,
    ``after`` the text from the site) is the key's, so code; one that does
    not (``f"password={…}"``) opens a string."""
    lexer, closes = _lexer(language)
    i, n = 0, len(body)
    while True:
        m = lexer.search(body, i)
        if m is None:
            return True
        opener, i = m.group(), m.end()
        if opener == "\n":
            continue
        shell = opener.lstrip(" \t")
        if shell[:1] == "%":
            # a magic; "%%bash" makes the rest of the cell its text, and the
            # canonical form may have decoded "%%ba" to "%o": any "%" line
            return False
        if shell[:1] in ("!", "$"):
            opener = "//"  # to the line's end
        if opener.startswith("<<"):  # a heredoc: to its word alone on a line
            i = _heredoc_end(body, i, m.group(2))
            if i < 0:
                return False
            continue
        if i == n and opener in ("'", '"', "`"):  # the key's own quote?
            key = r"[\w.$@-]{1,48}" + re.escape(opener)
            return re.match(key, after) is not None
        end = _close(body, i, closes[opener])
        if end < 0:
            return False
        i = end


def _heredoc_end(body: str, i: int, word: str) -> int:
    """After the line, below ``i``'s, that starts (after blanks) with
    ``word``; -1 if none does."""
    line = body.find("\n", i)
    while line != -1:
        start = line + 1
        line = body.find("\n", start)
        text = body[start : len(body) if line == -1 else line].lstrip(" \t")
        if text.startswith(word) and not text[len(word) : len(word) + 1].isalnum():
            return (len(body) if line == -1 else line) - len(text) + len(word)
    return -1


def _close(body: str, i: int, close: str) -> int:
    """Where what opened before ``i`` ends (after ``close``); -1 if it is
    still open at the end of ``body``. A single-quoted string ends at the
    line's end, its closing quote or not."""
    while True:
        j = body.find(close, i)
        if close == "'":
            line_end = body.find("\n", i)
            if line_end != -1 and (j == -1 or line_end < j):
                return line_end
        if j == -1:
            return -1
        if close in ("'", '"', "`") and _escaped(body, j):
            i = j + 1
            continue
        return j + len(close)


def _escaped(body: str, j: int) -> bool:
    k = j
    while k > 0 and body[k - 1] == "\\":
        k -= 1
    return (j - k) % 2 == 1
