"""Where the values of a tool call's arguments came from (I12 provenance).

A run records what the user asked and what trusted data it read, and, apart,
the untrusted content it read (tool outputs, documents). Before a
consequential call, every *checked* value of its arguments is looked up in
both: a value found in trusted data is *traced*; one found only in untrusted
content is *injected*; one found in neither was made up (*untraced*).

Values are compared in the one canonical form (``canonical()``: case, white
space, lookalike letters, zero-width characters, URL escapes), as runs of
word tokens, boundaries kept: ``mark.black@x.com`` is the token run
``mark black x com``, not found in a text that says only ``mark``, and
``report@tome.at`` is not found in "the report to me at home". A value also
matches one word that glues its tokens, and a spaced IBAN in a text is also
indexed glued: ``GB29 NWBK 6016 1331 9268 19`` is ``gb29nwbk60161331926819``.
Numbers are compared as numbers (``1,000.00`` is ``1000``).

Which values are checked (documented in docs/run-taint.md):

- every string and number leaf of the arguments, at any depth of mappings,
  sequences, pydantic models and dataclasses; booleans and None are not;
- a date is compared as a date: ``2024-05-19 12:00`` is found where a text
  says ``2024-05-19``, ``May 19th, 2024``, ``19 May`` or ``the 17th to the
  19th of May``; a date found only in untrusted content is injected and
  one found nowhere is no reason to ask; a time of day alone (``12:00``) is
  not checked;
- an argument named like free text (``FREE_TEXT``: ``body``, ``subject``,
  ``content``…) is the model's prose: only the identifiers it carries are
  checked;
- any other string of at most ``VALUE_TOKENS`` words (separated by white
  space) is a value and checked whole, letters only included (a file
  name, a channel); a longer one too (``LONG_VALUE``), but made up (found
  nowhere) it is no reason to ask;
- a number is compared as a number; trusted text vouches only for numbers
  standing on their own (not the "13" of "June 13" or "13:00"), untrusted
  text is read generously (numbers inside dates and words, spelled in
  words, and runs of single letters glued);
- in any string, the identifiers it carries are checked: e-mail addresses,
  URLs and domain names, account numbers (IBANs, also spaced), and any word
  of eight or more letters and digits with a digit in it; the other words of
  a longer text (a message body) are the model's prose and are not checked.

Memory is bounded: an index keeps hashed token runs (at most
``MAX_NGRAM`` tokens long), at most ``MAX_UNTRUSTED_KEYS`` /
``MAX_TRUSTED_KEYS`` of them, and reads at most 1 MiB of one text. Past
either bound an index is emptied and marked overflowed: an overflowed
untrusted index answers "found" for every value (fail closed: a value not
traced is then treated as injected), an overflowed trusted index traces
nothing more.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from aiinvariants._internal.canonical import canonical

if TYPE_CHECKING:
    from aiinvariants.taint import AgentRun

__all__ = [
    "INJECTED",
    "TRACED",
    "UNTRACED",
    "WORDING",
    "ProvenanceIndex",
    "arguments_by_name",
    "checked_values",
    "decide",
    "is_destination",
    "link_forms",
    "result_records",
    "result_texts",
    "signature_of",
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

    __slots__ = ("_cap", "_keys", "_lock", "_loose", "overflowed")

    def __init__(self, *, cap: int, loose: bool = False) -> None:
        self._cap = cap
        self._loose = loose
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
        new.update(
            hash(_glued(_TOKEN.findall(m.group())))
            for m in _SPACED_IBAN.finditer(folded)
        )
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


def _forms(tokens: list[str]) -> tuple[str, ...]:
    """The token run (windows past ``MAX_NGRAM``) and the same glued into
    one word: found as one word of a text, or a spaced account number."""
    run = _compact(tokens) if len(tokens) <= MAX_NGRAM else "\x00".join(tokens)
    return (run, _glued(tokens))


#: Argument names whose value is the model's prose (a message, a summary):
#: only the identifiers they carry are checked, whatever their length.
FREE_TEXT: Final = frozenset(
    {
        "body",
        "caption",
        "comment",
        "content",
        "description",
        "message",
        "note",
        "notes",
        "reply",
        "subject",
        "summary",
        "text",
        "title",
    }
)
_LAST_NAME: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)(?:\[\d+\])*$")


def _is_free_text(where: str) -> bool:
    """True when the argument path ends in a free-text name (``body``,
    ``email.subject``, ``notes[2]``)."""
    m = _LAST_NAME.search(where)
    return m is not None and m.group(1).lower() in FREE_TEXT


def _string_checks(text: str, *, free_text: bool = False) -> list[tuple[str, ...]]:
    folded = " ".join(canonical(text[:_MAX_LEAF_CHARS]).text.split())
    if not folded:
        return []
    if free_text:
        return _entity_checks(folded, _TOKEN.findall(folded), whole=False)
    if _WHEN.fullmatch(folded):
        # A date is checked as a date (``2024-05-19`` is "May 19th"); a time
        # of day alone is not checked.
        m = _ISO_DATE.match(folded)
        if m is None:
            return []
        year, month, day = m.group(1), int(m.group(2)), int(m.group(3))
        # Like wording: injected when only untrusted content names it, and
        # a date the model worked out ("today", "next Friday") is no reason
        # to ask on its own.
        return [
            (WORDING, f"#d:{year}-{month:02d}-{day:02d}", f"#d:{month:02d}-{day:02d}")
        ]
    checks: list[tuple[str, ...]] = []
    tokens = _TOKEN.findall(folded)
    if not tokens:
        return []
    whole = len(folded.split()) <= VALUE_TOKENS
    if whole:
        number = _as_number(folded, tokens)
        if number is not None:
            # A number only as a number: the token "13" of a trusted
            # "June 13" vouches for no file 13 (numbers in dates and times
            # are not indexed as numbers in trusted text), however the
            # value spells it (``+13``, ``13.``, ``1_3``, ``$13``).
            key = _number_key(number)
            return [(key,) if key is not None else ()]
        checks.append(_forms(tokens))
    else:
        checks.append((LONG_VALUE, *_forms(tokens)))
    return checks + _entity_checks(folded, tokens, whole=whole)


def _as_number(folded: str, tokens: list[str]) -> str | None:
    """The number a value is, as ``_number_key`` reads it, or None: a number
    (``1,000.00``), one a parser reads (``+13``, ``1_3``, ``13.``), or a value
    whose one token is digits (``$13``, ``#13``, ``(13)``)."""
    if _NUMBER.fullmatch(folded):
        return folded
    parsed = _PARSED_NUMBER.fullmatch(folded)
    if parsed is not None:
        return parsed.group(1).replace("_", "")
    if len(tokens) == 1 and tokens[0].isdigit():
        return tokens[0]
    return None


def _entity_checks(
    folded: str, tokens: list[str], *, whole: bool
) -> list[tuple[str, ...]]:
    """The identifiers a text carries (addresses, URLs and hosts, account
    numbers, ids), each checked on its own."""
    checks: list[tuple[str, ...]] = []
    for match in _ENTITIES.finditer(folded):
        if _WHEN.fullmatch(match.group()):
            continue
        entity = _TOKEN.findall(match.group())
        if entity and (not whole or entity != tokens):
            checks.append(_forms(entity))
        host = match.group("host")
        if host and host.startswith("www."):
            host = host[4:]
        if host and host != match.group():
            # A URL's host alone: ``https://evil.example/x`` carries the
            # ``evil.example`` an injection named.
            checks.append(_forms(_TOKEN.findall(host)))
    return checks


def _model_items(item: BaseModel) -> list[tuple[str, Any]]:
    """A pydantic model's fields, and the extra ones (``extra="allow"``)."""
    items = [(f, getattr(item, f, None)) for f in type(item).model_fields]
    extra = item.model_extra
    if extra:
        items += [(str(k), v) for k, v in extra.items()]
    return items


def _is_schema_key(key: object) -> bool:
    """A mapping key or argument name that is schema (``file_id``), not a
    value: an identifier's shape with no address, URL, account number or
    id in it (``{"US13…": 100}`` and ``**{"US13…": 100}`` are values)."""
    if not isinstance(key, str) or not _SCHEMA_KEY.fullmatch(key):
        return False
    spaced = canonical(key.replace("_", " ").replace("-", " ")).text
    return _ENTITIES.search(spaced) is None


def _mapping_children(item: Mapping[Any, Any], where: str) -> list[tuple[str, Any]]:
    # A key is schema ("file_id") unless it looks like a value (an address,
    # a URL, an account number: ``{"eve@evil.example": "write"}``); such a
    # key is checked, and never named in a path (paths reach the audit).
    children: list[tuple[str, Any]] = []
    for i, (k, v) in enumerate(item.items()):
        if _is_schema_key(k):
            children.append((f"{where}.{k}", v))
        else:
            children.append((f"{where}[key {i}]", k))
            children.append((f"{where}[{i}]", v))
    return children


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    todo: list[tuple[Any, str, int]] = [(value, path, 0)]
    nodes = 0
    while todo:
        item, where, depth = todo.pop()
        nodes += 1
        if nodes > _MAX_NODES or depth > _MAX_DEPTH:
            yield where, _TooBig
            return
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str | int | float | Decimal):
            yield where, item
            continue
        if isinstance(item, bytes | bytearray):
            yield where, bytes(item[:_MAX_LEAF_CHARS]).decode("utf-8", "replace")
            continue
        children: Iterable[tuple[str, Any]]
        if isinstance(item, Mapping):
            children = _mapping_children(item, where)
        elif isinstance(item, BaseModel):
            # Extra fields (``extra="allow"``) are read like a mapping's items.
            children = [
                (f"{where}.{f}", getattr(item, f, None))
                for f in type(item).model_fields
            ]
            children += _mapping_children(item.model_extra or {}, where)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            children = [
                (f"{where}.{f.name}", getattr(item, f.name, None))
                for f in dataclasses.fields(item)
            ]
        elif isinstance(item, list | tuple | set | frozenset):
            children = [(f"{where}[{i}]", v) for i, v in enumerate(item)]
        else:
            yield where, str(item)[:_MAX_LEAF_CHARS]
            continue
        todo.extend((v, w, depth + 1) for w, v in reversed(list(children)))


class _TooBigType:
    pass


_TooBig: Final = _TooBigType()


def checked_values(arguments: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """The (argument name, forms) pairs whose provenance decides a call.

    An argument too large or too deep to read yields ``(name, ())``: a value
    with no form is never traced (fail closed).
    """
    found: list[tuple[str, tuple[str, ...]]] = []
    for i, (name, value) in enumerate(arguments.items()):
        named = _is_schema_key(name)
        if not named:
            found += [(f"[key {i}]", forms) for forms in _string_checks(str(name))]
        for where, leaf in _leaves(value, name if named else f"[{i}]"):
            if leaf is _TooBig:
                found.append((where, ()))
            elif isinstance(leaf, str):
                free = _is_free_text(where)
                found += [
                    (where, forms) for forms in _string_checks(leaf, free_text=free)
                ]
            else:
                key = _number_key(repr(leaf) if isinstance(leaf, float) else str(leaf))
                found.append((where, (key,) if key is not None else ()))
    return found


def result_texts(
    value: Any, trusted_fields: frozenset[str]
) -> Iterator[tuple[bool, str]]:
    """(trusted, text) for every leaf of a tool result.

    A leaf is trusted when it lies under one of ``trusted_fields`` of a
    *record*: the result itself, or an item of a list (of lists) that the
    result is. A field of the same name deeper down, inside another field
    (an e-mail's ``headers``, a ``metadata`` mapping the sender filled), is
    not the system of record's and is not trusted: an attacker cannot plant
    ``{"sender": ...}`` in a field they write. A result too large or too
    deep to read ends with ``(False, NOT_READ)``: what was not read may hold
    the injection, so the index it goes to overflows (fail closed).
    """
    # (item, trusted, at a record's level, depth)
    todo: list[tuple[Any, bool, bool, int]] = [(value, False, True, 0)]
    nodes = 0
    while todo:
        item, trusted, record, depth = todo.pop()
        nodes += 1
        if nodes > _MAX_RESULT_NODES or depth > _MAX_DEPTH:
            yield False, NOT_READ
            return
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            yield trusted, item
            continue
        if isinstance(item, int | float | Decimal):
            yield trusted, str(item)
            continue
        if isinstance(item, bytes | bytearray):
            yield trusted, bytes(item[:_MAX_LEAF_CHARS]).decode("utf-8", "replace")
            continue
        fields: list[tuple[object, Any]]
        if isinstance(item, Mapping):
            fields = list(item.items())
            todo.extend(
                (k, trusted, False, depth + 1) for k in item if isinstance(k, str)
            )
        elif isinstance(item, BaseModel):
            fields = list(_model_items(item))
            todo.extend((k, trusted, False, depth + 1) for k in item.model_extra or {})
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            fields = [
                (f.name, getattr(item, f.name, None)) for f in dataclasses.fields(item)
            ]
        elif isinstance(item, list | tuple | set | frozenset):
            todo.extend((v, trusted, record, depth + 1) for v in item)
            continue
        else:
            yield trusted, str(item)[:_MAX_LEAF_CHARS]
            continue
        todo.extend(
            (
                v,
                trusted or (record and isinstance(k, str) and k in trusted_fields),
                False,
                depth + 1,
            )
            for k, v in fields
        )


def result_records(value: Any, trusted_fields: frozenset[str]) -> Iterator[list[str]]:
    """For each record of a tool result (the result itself, or an item of a
    list of them), the texts under its ``trusted_fields``; records with none
    are skipped. Bounded like :func:`result_texts`."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while todo and trusted_fields:
        item, depth = todo.pop()
        nodes += 1
        if nodes > _MAX_RESULT_NODES or depth > _MAX_DEPTH:
            return
        if isinstance(item, list | tuple):
            todo.extend((v, depth + 1) for v in reversed(item))
            continue
        fields: list[tuple[object, Any]]
        if isinstance(item, Mapping):
            fields = list(item.items())
        elif isinstance(item, BaseModel):
            fields = list(_model_items(item))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            fields = [
                (f.name, getattr(item, f.name, None)) for f in dataclasses.fields(item)
            ]
        else:
            continue
        texts = [
            text
            for k, v in fields
            if isinstance(k, str) and k in trusted_fields
            for _, text in result_texts(v, frozenset())
        ]
        if texts:
            yield texts[:1000]


_DESTINATION: Final = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail address
    rf"|(?:[a-z][a-z0-9+.-]*://)?(?:[\w-]+\.)+{_TLD}(?:[:/]|\b)"  # URL, host
    rf"|{_ANY_URL}"
    rf"|{_IBAN}"
)


def is_destination(text: str) -> bool:
    """True when ``text`` names somewhere data can go: an e-mail address, a
    URL or domain name, an account number."""
    folded = canonical(text[:_MAX_LEAF_CHARS]).text
    return _DESTINATION.search(folded) is not None


def link_forms(text: str) -> tuple[str, ...] | None:
    """The forms of a record's field value that can identify the record
    when the user's request holds it whole: a name, an address, a title of
    at least six characters and at most ``VALUE_TOKENS`` words; never a
    number, a date or a time (every record of a day shares its date)."""
    folded = " ".join(canonical(text[:_MAX_LEAF_CHARS]).text.split())
    if len(folded) < 6 or len(folded.split()) > VALUE_TOKENS:
        return None
    if _NUMBER.fullmatch(folded) or _WHEN.fullmatch(folded):
        return None
    tokens = _TOKEN.findall(folded)
    if not tokens or all(t.isdigit() for t in tokens):
        return None
    return _forms(tokens)


def signature_of(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def arguments_by_name(
    signature: inspect.Signature | None,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """A call's arguments by parameter name (``*args`` as a list, ``**kwargs``
    spread); arguments that do not bind keep a positional name (``arg0``)."""
    if signature is not None:
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError:
            pass
        else:
            named: dict[str, Any] = {}
            for name, value in bound.arguments.items():
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD and isinstance(value, dict):
                    named.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    named[name] = list(value)
                else:
                    named[name] = value
            return named
    named = {f"arg{i}": value for i, value in enumerate(args)}
    named.update(kwargs)
    return named


def decide(
    run: AgentRun, arguments: Mapping[str, Any] | None
) -> tuple[str, tuple[str, ...]]:
    """I12 provenance of a call: (verdict, the argument paths that decided).

    ``traced`` needs every checked value in trusted data; one value found
    only in untrusted content makes the call ``injected``; a value in
    neither, no checked value, or arguments the integration did not pass
    make it ``untraced``.
    """
    if not run.has_provenance:
        return "no_provenance", ()
    if arguments is None:
        return "untraced", ()
    verdicts = [
        (where, _verdict(run, forms)) for where, forms in checked_values(arguments)
    ]
    injected = tuple(where for where, v in verdicts if v == INJECTED)
    if injected:
        return INJECTED, injected
    untraced = tuple(where for where, v in verdicts if v != TRACED)
    if untraced or not verdicts:
        return "untraced", untraced
    return TRACED, ()


def _verdict(run: AgentRun, forms: tuple[str, ...]) -> str:
    if forms[:1] == (WORDING,):
        # A date: injected if untrusted content holds it; one the model
        # worked out ("next Friday") is no reason to ask on its own.
        verdict = run.provenance(forms[1:])
        return INJECTED if verdict == INJECTED else TRACED
    if forms[:1] == (LONG_VALUE,):
        # Injected when only untrusted content holds it, asked when trusted
        # data and untrusted content both do (the injection picked a
        # record); the model's own words (found nowhere) are no reason to ask.
        verdict = run.provenance(forms[1:])
        if verdict == UNTRACED and not run.in_untrusted(forms[1:]):
            return TRACED
        return verdict
    return run.provenance(forms)
