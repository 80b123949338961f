"""How texts are indexed for argument provenance (I12).

A run's texts (the user's request, trusted data, untrusted content) go into
:class:`ProvenanceIndex` es: bounded sets of hashed token runs, numbers and
dates, all in the canonical form. ``aiinvariants._internal.provenance``
reads a call's arguments into the same forms and looks them up; its
docstring and docs/run-taint.md say how values are compared.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Final

from aiinvariants._internal.canonical import canonical

__all__ = [
    "INJECTED",
    "LONG_VALUE",
    "MAX_NGRAM",
    "MAX_TRUSTED_KEYS",
    "MAX_UNTRUSTED_KEYS",
    "NAME",
    "NOT_READ",
    "TRACED",
    "UNTRACED",
    "VALUE_TOKENS",
    "WORDING",
    "ProvenanceIndex",
    "iban_runs",
]

TRACED: Final = "traced"
INJECTED: Final = "injected"
UNTRACED: Final = "untraced"

MAX_NGRAM: Final = 8
VALUE_TOKENS: Final = 4
MAX_UNTRUSTED_KEYS: Final = 1 << 18
MAX_TRUSTED_KEYS: Final = 1 << 17
_MAX_NODES: Final = 10_000
_MAX_RESULT_NODES: Final = 100_000
_MAX_DEPTH: Final = 32
_MAX_LEAF_CHARS: Final = 1 << 20

_TOKEN: Final = re.compile(r"[^\W_]+")
_SCHEMA_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_NUMBER: Final = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
#: A number standing on its own: not a part of a word, an account number, a
#: date or a time of day. Only these vouch for a number in trusted text: the
#: "13" of "June 13" is a day, not the id of file 13.
_STANDALONE: Final = re.compile(
    r"(?<![^\W_])(?<![.,:/-])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![^\W_])(?![.,:/-]?\d)"
)
_TIME: Final = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?")
_UNITS: Final = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
)
_TENS: Final = "twenty thirty forty fifty sixty seventy eighty ninety"
_NUMBER_WORDS: Final = {word: i for i, word in enumerate(_UNITS.split(" "))} | {
    word: 10 * (i + 2) for i, word in enumerate(_TENS.split(" "))
}
_MONTH_NAMES: Final = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
#: The months in German, Dutch, French, Spanish, Italian and Portuguese, in
#: canonical form (accents folded): a user's "13. Juni" or "13 de junio" is a
#: day, not the id 13.
_OTHER_MONTHS: Final = (
    ("januar", "januari", "janvier", "enero", "gennaio", "janeiro"),
    ("februar", "februari", "fevrier", "febrero", "febbraio", "fevereiro"),
    ("marz", "maart", "mars", "marzo", "marco"),
    ("avril", "abril", "aprile"),
    ("mai", "mei", "mayo", "maggio", "maio"),
    ("juni", "juin", "junio", "giugno", "junho"),
    ("juli", "juillet", "julio", "luglio", "julho"),
    ("augustus", "aout", "agosto"),
    ("septembre", "septiembre", "settembre", "setembro"),
    ("oktober", "octobre", "octubre", "ottobre", "outubro"),
    ("novembre", "noviembre", "novembro"),
    ("dezember", "decembre", "diciembre", "dicembre", "dezembro"),
)
_MONTHS: Final = {
    **{name: i + 1 for i, names in enumerate(_OTHER_MONTHS) for name in names},
    **{name: i + 1 for i, name in enumerate(_MONTH_NAMES)},
    **{name[:3]: i + 1 for i, name in enumerate(_MONTH_NAMES)},
    "sept": 9,
}
_MONTH: Final = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY: Final = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR: Final = r"(?:,?\s+(\d{4}))?"
_ISO_DATE: Final = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_MONTH_DAY: Final = re.compile(rf"\b{_MONTH},?\s+{_DAY}\b{_YEAR}")
_DAY_MONTH: Final = re.compile(
    rf"\b{_DAY}\.?(?:\s+(?:to|until|till|and|-)\s+(?:the\s+)?{_DAY}\.?)?"
    rf"\s+(?:(?:of|de|del|di)\s+)?{_MONTH}\b{_YEAR}"
)


def _date_keys(folded: str, spans: list[tuple[int, int]] | None = None) -> set[str]:
    """``#d:MM-DD`` and ``#d:YYYY-MM-DD`` of each date a text spells
    (``2024-05-19``, ``May 19th, 2024``, ``the 13th to the 17th of May``);
    the dates' spans are appended to ``spans`` when given."""
    found: list[tuple[str | None, int, int]] = []
    matches: list[re.Match[str]] = []
    for m in _ISO_DATE.finditer(folded):
        matches.append(m)
        found.append((m.group(1), int(m.group(2)), int(m.group(3))))
    for m in _MONTH_DAY.finditer(folded):
        matches.append(m)
        found.append((m.group(3), _MONTHS[m.group(1)], int(m.group(2))))
    for m in _DAY_MONTH.finditer(folded):
        matches.append(m)
        month = _MONTHS[m.group(3)]
        found.append((m.group(4), month, int(m.group(1))))
        if m.group(2):
            found.append((m.group(4), month, int(m.group(2))))
    if spans is not None:
        spans += [m.span() for m in matches]
        spans += [m.span() for m in _TIME.finditer(folded)]
    keys: set[str] = set()
    for year, month, day in found:
        if 1 <= month <= 12 and 1 <= day <= 31:
            keys.add(f"#d:{month:02d}-{day:02d}")
            if year:
                keys.add(f"#d:{year}-{month:02d}-{day:02d}")
    return keys


#: First form of a value that, made up, is no reason to ask (a date).
WORDING: Final = "\x01wording"
#: First form of a string of more than ``VALUE_TOKENS`` words outside free
#: text (a hotel's, a file's or a street's long name): checked whole like
#: any value, but made up (the model's own words) it is no reason to ask.
LONG_VALUE: Final = "\x01long"
#: The first form of a value that names somewhere data can go (an e-mail
#: address, a URL or host, an account number): the user's request traces it
#: only where it stands there as a whole name, never as a part of a longer
#: one (``website.com`` is not the user's for ``www.dora-website.com``).
NAME: Final = "\x01name"
_WHEN: Final = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}(?:[ t]\d{1,2}:\d{2}(?::\d{2})?)?|\d{1,2}:\d{2}(?::\d{2})?"
)
_IBAN: Final = r"\b[a-z]{2}\d{2}(?:[ -]?[a-z0-9]{4}){2,8}(?:[ -]?[a-z0-9]{1,4})?\b"
#: A host's top-level domain: letters of any script (``.рф``), not digits.
_TLD: Final = r"[^\W\d_]{2,}"
#: A URL whatever its host (an IP address, ``localhost``, ``[::1]``), and an
#: IPv4 address with or without a path.
_ANY_URL: Final = (
    r"[a-z][a-z0-9+.-]*://[^\s/?#]+(?:[/?#]\S*)?"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b(?::\d+)?(?:/\S*)?"
)
_ENTITIES: Final = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail address
    rf"|(?:[a-z][a-z0-9+.-]*://)?(?P<host>(?:[\w-]+\.)+{_TLD})(?::\d+)?(?:/\S*)?"
    rf"|{_ANY_URL}"
    rf"|{_IBAN}"  # IBAN, also spaced
    r"|\b(?=[a-z]*\d)[a-z0-9]{8,}\b"  # account number, code, id
)
_SPACED_IBAN: Final = re.compile(_IBAN)
#: The start of an account number however it is grouped or separated
#: (``CH93.0076…``, ``CH 93 0076…``, ``CH93/0076…``): see :func:`iban_runs`.
_IBAN_START: Final = re.compile(r"[a-z]{2}(?:\d{2}[a-z0-9]*)?")
_IBAN_HINT: Final = re.compile(r"(?<![a-z0-9])[a-z]{2}[^a-z0-9]{0,2}\d{2}")
_IBAN_CHECK: Final = re.compile(r"[a-z]{2}\d{2}[a-z0-9]{11,30}")


def _iban_valid(glued: str) -> bool:
    """The IBAN check digits hold (ISO 13616, mod 97)."""
    moved = glued[4:] + glued[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _last_group(token: str) -> bool:
    # A full group, or a shorter last one with a digit (not a word: "and").
    return len(token) == 4 or (len(token) < 4 and any(c.isdigit() for c in token))


def iban_runs(folded: str) -> list[list[str]]:
    """The token runs of ``folded`` that spell an account number with any
    grouping and separators (one or two characters that are no letter or
    digit between groups: ``CH93.0076.2011…``, ``CH 93 0076…``,
    ``CH93_0076…``), taken as one when its IBAN check digits hold (so that
    digits in prose are not) or when it is groups of four apart by one same
    separator, as an IBAN is written. The longest run from each start.
    Linear: at most 34 characters are read from a start."""
    folded = folded[:_MAX_LEAF_CHARS]
    if _IBAN_HINT.search(folded) is None:
        return []
    matches = list(_TOKEN.finditer(folded))
    found: list[list[str]] = []
    i, n = 0, len(matches)
    while i < n:
        first = matches[i].group()
        if not first.isascii() or _IBAN_START.fullmatch(first) is None:
            i += 1
            continue
        glued, best, j = "", 0, i
        # Groups of four apart by one same separator (``US13.3000.0001…``)
        # are an account number like the spaced ones, check digits or not.
        regular, seps = len(first) == 4, set()
        while j < n and len(glued) < 34:
            token = matches[j].group()
            if j > i:
                sep = folded[matches[j - 1].end() : matches[j].start()]
                if len(sep) > 2:
                    break
                regular = regular and len(matches[j - 1].group()) == 4
                seps.add(sep)
            if not (token.isascii() and token.isalnum()):
                break
            glued += token
            j += 1
            if len(glued) >= 4 and not glued[2:4].isdigit():
                break
            if _IBAN_CHECK.fullmatch(glued) and (
                (regular and len(seps) == 1 and _last_group(token))
                or _iban_valid(glued)
            ):
                best = j
        if best:
            found.append([m.group() for m in matches[i:best]])
            i = best
        else:
            i += 1
    return found


#: A leaf that stands for content that was not read (too large, too deep):
#: an index given it overflows (fail closed).
NOT_READ: Final = "\x00not read"


def _number_key(text: str) -> str | None:
    """``#`` and the number in plain digits (``1,000.00`` is ``#1000``),
    exact (no rounding to a context's precision: two long account numbers
    that differ in the last digit differ) and bounded (a huge exponent is
    written as one, never expanded)."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    sign, digit_tuple, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # pragma: no cover - finite values
        return None
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "#0"
    kept = digits.rstrip("0")
    exponent += len(digits) - len(kept)
    if 0 <= exponent <= _MAX_EXPANDED:
        plain = kept + "0" * exponent
    elif -_MAX_EXPANDED <= exponent < 0:
        whole, point = kept[:exponent], kept[exponent:]
        plain = f"{whole or '0'}.{point.rjust(-exponent, '0')}"
    else:
        plain = f"{kept}e{exponent}"
    return "#" + ("-" if sign else "") + plain


#: A number written as a parser still reads it (``+13``, ``1_3``, ``13.``):
#: ``int()``, ``float()`` and pydantic accept these. Its sign is not part of
#: the comparison (untrusted text's ``-13`` holds 13, as its token did).
_PARSED_NUMBER: Final = re.compile(r"[+-]?((?=[\d_.]*\d)[\d_]*\.?[\d_]*)")
_MAX_EXPANDED: Final = 64


def _compact(tokens: Iterable[str]) -> str:
    # Token boundaries are kept: the user's "report to me at" is not the
    # attacker's "report@tome.at". ``_glued`` forms see through spacing.
    return " ".join(tokens)


def _glued(tokens: Iterable[str]) -> str:
    return "\x02" + "".join(tokens)


def _number_keys(folded: str, tokens: list[str], *, loose: bool) -> set[str]:
    """The number keys of a text. Trusted text (``loose=False``) vouches
    only for numbers standing on their own, outside dates and times: a
    user's "June 13" or "10:30" vouches for no id 13 or amount 30.
    Untrusted text (``loose=True``) is read generously, fail closed: every
    run of digits, also inside dates, words and account numbers, and the
    numbers spelled in words ("thirteen", "twenty one")."""
    spans: list[tuple[int, int]] = []
    keys = _date_keys(folded, spans)
    found = _NUMBER if loose else _STANDALONE
    for match in found.finditer(folded):
        if not loose and any(a <= match.start() < b for a, b in spans):
            continue
        key = _number_key(match.group())
        if key is not None:
            keys.add(key)
    if loose:
        values = [_NUMBER_WORDS.get(token) for token in tokens]
        keys.update(f"#{n}" for n in values if n is not None)
        keys.update(
            f"#{a + b}"
            for a, b in itertools.pairwise(values)
            if a is not None and b is not None and a >= 20 and a % 10 == 0 and b < 10
        )
    return keys


def _letter_runs(tokens: list[str]) -> Iterator[list[str]]:
    """Each run of three or more one-character tokens (at most 64 long)."""
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and len(run) < 64:
            run.append(token)
            continue
        if len(run) >= 3:
            yield run
        run = [token] if len(token) == 1 else []


class ProvenanceIndex:
    """A bounded set of the token runs and numbers of some texts.

    ``loose`` indexes (untrusted content) read numbers generously: a number
    hidden in a date or spelled in words is still found there.
    """

    __slots__ = ("_aligned", "_cap", "_keys", "_lock", "_loose", "overflowed")

    def __init__(self, *, cap: int, loose: bool = False, aligned: bool = False) -> None:
        self._cap = cap
        self._loose = loose
        self._aligned = aligned
        self._keys: set[int] = set()
        self._lock = threading.Lock()
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, text: str) -> None:
        """Index ``text`` (canonical form): its token runs and its numbers.

        Past the cap the index is emptied and marked ``overflowed``: the
        memory is released and the owner decides what an overflow means.
        """
        if self.overflowed or not text:
            return
        if text == NOT_READ:
            with self._lock:
                self.overflowed = True
                self._keys = set()
            return
        folded = canonical(text[:_MAX_LEAF_CHARS]).text
        tokens = _TOKEN.findall(folded)
        room = self._cap - len(self._keys)
        new = {hash(key) for key in _number_keys(folded, tokens, loose=self._loose)}
        if self._loose:
            # A value spelled letter by letter ("p a s s w o r d s",
            # "p.a.s.s") is reassembled by the model: untrusted content
            # also holds each run of single characters glued.
            new.update(hash(_glued(run)) for run in _letter_runs(tokens))
        # A token, and a spaced account number, also as one glued word: a
        # value ``GB29NWBK…`` is found where a text spells it in groups.
        accounts = [_TOKEN.findall(m.group()) for m in _SPACED_IBAN.finditer(folded)]
        accounts += iban_runs(folded)
        new.update(hash(_glued(run)) for run in accounts)
        if self._aligned:
            new.update(hash(key) for key in _aligned_keys(folded))
            new.update(hash(_ALIGNED + _glued(run)) for run in accounts)
        for start in range(len(tokens)):
            joined = ""
            new.add(hash(_glued(tokens[start : start + 1])))
            for token in tokens[start : start + MAX_NGRAM]:
                joined = f"{joined} {token}" if joined else token
                new.add(hash(joined))
            if len(new) > room:
                break
        with self._lock:
            self._keys |= new
            if len(self._keys) > self._cap or len(text) > _MAX_LEAF_CHARS:
                self.overflowed = True
                self._keys = set()

    def contains(self, forms: tuple[str, ...]) -> bool:
        """True when one of the forms (compact token runs, numbers) is indexed."""
        return any(self._has(form) for form in forms)

    def holds_name(self, forms: tuple[str, ...]) -> bool:
        """True when the value of ``forms`` stands in an indexed text as a
        whole name (an ``aligned`` index): its first token starts a name of
        the text and its last ends one, so ``website.com`` is not held by a
        text that says only ``www.dora-website.com``, nor
        ``december-2023.txt`` by one that says ``bill-december-2023.txt``.
        Number and date forms are looked up as :meth:`contains` does."""
        if not self._aligned:
            return False
        keys = self._keys
        for form in forms:
            if form.startswith("#"):
                if hash(form) in keys:
                    return True
            elif "\x00" in form:
                # A run longer than MAX_NGRAM tokens (a long value): its
                # windows, as ``contains`` reads them.
                if self._has(form):
                    return True
            elif hash(_ALIGNED + form) in keys:
                return True
        return False

    def _has(self, form: str) -> bool:
        keys = self._keys
        if form.startswith(("#", "\x02")) or "\x00" not in form:
            return hash(form) in keys
        # A run longer than MAX_NGRAM tokens: every window must be there.
        tokens = form.split("\x00")
        return all(
            hash(_compact(tokens[i : i + MAX_NGRAM])) in keys
            for i in range(len(tokens) - MAX_NGRAM + 1)
        )


#: The prefix of a token run that stands as a whole name in a text.
_ALIGNED: Final = "\x03"
#: What joins two tokens into one name (``bill-december-2023.txt``,
#: ``https://www.dora-website.com/contact``, ``mark.black@x.com``,
#: ``c:\\shared\\bill.txt``): anything
#: else (white space, a quote, a comma, a bracket) ends a name.
_JOINER: Final = re.compile(r"[.\-_@/\\+~%=#&?:]*")


def _aligned_keys(folded: str) -> Iterator[str]:
    """The token runs of ``folded`` that start where a name starts and end
    where a name ends (at most ``MAX_NGRAM`` tokens), as a compact run and
    glued. A URL is a name, and so is its host (``https://`` and a leading
    ``www.`` are optional, the path too): ``dora-website.com`` is named by
    ``https://www.dora-website.com/contact``, ``website.com`` is not. A
    name may end at a dot, never start after one."""
    matches = list(_TOKEN.finditer(folded[:_MAX_LEAF_CHARS]))
    tokens = [m.group() for m in matches]
    n = len(tokens)
    seps = [folded[matches[i].end() : matches[i + 1].start()] for i in range(n - 1)]
    # hard[i]: a name may end after token i and another start after it
    # (the tokens are apart: white space, a quote, a comma between them)
    hard = [_JOINER.fullmatch(sep) is None for sep in seps] + [True]
    ends = list(hard)
    starts = [True, *hard[:-1]]
    in_host = False
    for i, sep in enumerate(seps):
        if hard[i]:
            in_host = False
        elif "://" in sep:
            starts[i + 1], in_host = True, True
        elif in_host and "/" in sep:
            ends[i], in_host = True, False
        elif sep == ".":
            # A name may end at a full stop glued to what follows (a
            # request's "www.our-company.com.They sent..."); it never starts
            # after one (``website.com`` of ``www.dora-website.com``).
            ends[i] = True
        if starts[i] and tokens[i] == "www" and not hard[i]:
            starts[i + 1] = True
    for start in range(n):
        if not starts[start]:
            continue
        apart = False
        for end in range(start, min(n, start + MAX_NGRAM)):
            if ends[end]:
                run = tokens[start : end + 1]
                yield _ALIGNED + _compact(run)
                if not apart:
                    # Glued only within one word of the text: the user's
                    # "report to me at" is no ``report@tome.at``.
                    yield _ALIGNED + _glued(run)
            apart = apart or hard[end]


def _forms(tokens: list[str]) -> tuple[str, ...]:
    """The token run (windows past ``MAX_NGRAM``) and the same glued into
    one word: found as one word of a text, or a spaced account number."""
    run = _compact(tokens) if len(tokens) <= MAX_NGRAM else "\x00".join(tokens)
    return (run, _glued(tokens))
