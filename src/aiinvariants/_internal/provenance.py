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
- an argument the tool declares free text (``free_text`` in the policy)
  is the model's prose: only the identifiers it carries are checked; a
  tool that declares its free-text arguments has every other checked,
  whatever its name. Undeclared, one named like prose (``FREE_TEXT``:
  ``body``, ``content``...) is prose, and one named ``subject`` or
  ``title`` (``TITLES``) is checked whole, whatever its length;
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
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from aiinvariants._internal.canonical import canonical
from aiinvariants._internal.provenance_index import (
    _ANY_URL,
    _ENTITIES,
    _IBAN,
    _ISO_DATE,
    _MAX_DEPTH,
    _MAX_LEAF_CHARS,
    _MAX_NODES,
    _MAX_RESULT_NODES,
    _NUMBER,
    _PARSED_NUMBER,
    _SCHEMA_KEY,
    _TLD,
    _TOKEN,
    _WHEN,
    INJECTED,
    LONG_VALUE,
    NAME,
    NOT_READ,
    TRACED,
    UNTRACED,
    VALUE_TOKENS,
    WORDING,
    ProvenanceIndex,
    _forms,
    _number_key,
    iban_runs,
)

if TYPE_CHECKING:
    from aiinvariants.taint import AgentRun

__all__ = [
    "DELEGATED",
    "INJECTED",
    "TRACED",
    "UNTRACED",
    "WORDING",
    "ProvenanceIndex",
    "arguments_by_name",
    "checked_values",
    "decide",
    "delegation_sources",
    "is_destination",
    "link_forms",
    "link_keys",
    "named_document",
    "result_records",
    "result_texts",
    "signature_of",
]


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
        "summary",
        "text",
    }
)
#: Argument names of prose that may also identify what a call acts on (the
#: title of the document to share, the subject of the thread to answer):
#: undeclared, a value under one of them is checked whole, whatever its
#: length (a long one is a ``LONG_VALUE``: made up, no reason to ask).
TITLES: Final = frozenset({"subject", "title"})
_LAST_NAME: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)(?:\[\d+\])*$")


_FIRST_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX: Final = re.compile(r"\[\d+\]")


def _prose(where: str, declared: frozenset[str] | None) -> bool:
    """True when the leaf at ``where`` is the model's prose: only the
    identifiers it carries are checked.

    A tool that declares its free-text parameters (``free_text``) decides:
    a leaf under a declared argument (``body``, ``notes[2]``) or at a
    declared path (``email.subject``) is prose, every other is checked,
    whatever its name. Undeclared, a leaf named like prose (``FREE_TEXT``)
    is prose, and one named ``title`` or ``subject`` (``TITLES``) is not:
    it may be the identifier of what the call acts on ("share 'Payroll
    Salaries'", "share 'Employee Salaries and Bonuses 2024'"), whatever its
    length; a long one the model wrote is found nowhere and no reason to
    ask (``LONG_VALUE``)."""
    if declared is not None:
        # By the tool's own schema only: the argument's name, or its whole
        # path (``email.subject``), never the last key of a mapping the
        # model may have filled (``{"options": {"note": ...}}``).
        first = _FIRST_NAME.match(where)
        return (first is not None and first.group() in declared) or (
            _INDEX.sub("", where) in declared
        )
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
        checks.append(_named(folded, _forms(tokens)))
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


_IDEOGRAPHIC_DOT: Final = {0x3002: ".", 0xFF61: "."}


def _entity_checks(
    folded: str, tokens: list[str], *, whole: bool
) -> list[tuple[str, ...]]:
    """The identifiers a text carries (addresses, URLs and hosts, account
    numbers, ids), each checked on its own."""
    checks: list[tuple[str, ...]] = []
    # The ideographic full stop separates a host's labels as a dot does
    # (IDNA; Python's ``idna`` codec, browsers): ``evil。example`` is a host.
    for match in _ENTITIES.finditer(folded.translate(_IDEOGRAPHIC_DOT)):
        if _WHEN.fullmatch(match.group()):
            continue
        entity = _TOKEN.findall(match.group())
        if entity and (not whole or entity != tokens):
            checks.append(_named(match.group(), _forms(entity)))
        host = match.group("host")
        if host and host.startswith("www."):
            host = host[4:]
        if host and host != match.group():
            # A URL's host alone: ``https://evil.example/x`` carries the
            # ``evil.example`` an injection named.
            checks.append((NAME, *_forms(_TOKEN.findall(host))))
    # An account number however it is grouped or separated (``CH93.0076…``,
    # ``CH 93 0076…``): a reader pays to it all the same.
    seen = {forms[-1] for forms in checks}
    for run in iban_runs(folded):
        forms = (NAME, *_forms(run))
        if forms[-1] not in seen and (not whole or run != tokens):
            seen.add(forms[-1])
            checks.append(forms)
    return checks


def _named(text: str, forms: tuple[str, ...]) -> tuple[str, ...]:
    """``forms``, marked ``NAME`` when ``text`` names somewhere data can go:
    the user's request then traces it only as a whole name."""
    return (NAME, *forms) if is_destination(text) else forms


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


def checked_values(
    arguments: Mapping[str, Any], *, free_text: frozenset[str] | None = None
) -> list[tuple[str, tuple[str, ...]]]:
    """The (argument name, forms) pairs whose provenance decides a call;
    ``free_text``: the tool's declared free-text parameters (see
    :func:`_prose`).

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
                free = named and _prose(where, free_text)
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


def result_records(
    value: Any,
    trusted_fields: frozenset[str],
    container_fields: frozenset[str] = frozenset(),
) -> Iterator[tuple[list[str], list[str], list[str], list[str]]]:
    """For each record of a tool result (the result itself, or an item of a
    list of them): the texts under its ``trusted_fields``, the texts of
    its other fields (its content: what whoever wrote the record wrote),
    the texts of its trusted fields that hold one value (a file name,
    a sender: what identifies the record, not an audience its writer
    chose, such as a cc or a share list), and the texts of its
    ``container_fields`` that hold one value (the channel it was posted
    in: where it lies, not what it is; not among the first three); records
    with no trusted field are skipped. Bounded like
    :func:`result_texts`: a record's texts past 1,000 are left out, and a
    record whose content was not read whole carries ``NOT_READ``."""
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
        texts: list[str] = []
        content: list[str] = []
        single: list[str] = []
        containers: list[str] = []
        for k, v in fields:
            trusted = isinstance(k, str) and k in trusted_fields
            found = [text for _, text in result_texts(v, frozenset())]
            if trusted and k in container_fields:
                if isinstance(v, str):
                    containers += found
                continue
            into = texts if trusted else content
            into += found
            if trusted and isinstance(v, str | int | float | Decimal):
                single += found
        if texts or containers:
            if len(content) > 1000:
                content = [*content[:1000], NOT_READ]
            yield texts[:1000], content, single[:1000], containers[:16]


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


#: A file name: a stem of two or more words joined by separators, and an
#: extension of letters and digits (``grocery-list.docx``).
_FILE_NAME: Final = re.compile(r"([^\s./\\]+(?:[ _-][^\s./\\]+)+)\.[a-z0-9]{1,5}")


#: The ordinary words of a request: function words, politeness and the verbs
#: of asking. A name made of words only never starts or ends with one: an
#: attacker's ``pay-the.docx``, ``the-bill.txt`` or ``please pay`` are runs
#: of any request's words ("please pay the bill ..."), no name the user gave.
_ORDINARY: Final = """a about above after again all also am an and any are as at be been
    before being below between both but by can could did do does doing done
    down during each either else every few for from further get give go had
    has have having he her here hers him his how i if in into is it its just
    kindly let lets make me mine more most my myself need no nor not now of
    off on once only or other our ours out over own please same see send
    share she should show so some such tell than thank thanks that the their
    them then there these they this those through to too under until up us
    very want was we were what when where which while who whom why will with
    would you your yours pay read find check update add create delete visit
    post invite reply write put take use"""
#: The same in the other languages requests are often written in (German,
#: French, Spanish, Italian, Portuguese, Dutch): articles, prepositions,
#: pronouns, politeness and the verbs of asking, in canonical form (accents
#: folded). An attacker names a channel ``bitte besuche`` or ``les sites``
#: as well as ``please visit``.
_ORDINARY_OTHER = """aber alle als am an auch auf aus bei bitte danke das dass dem den
    der des die du ein eine einem einen einer es fur hast hat ich ihr im in
    ist mein meine mich mir mit nach oder schick schicke sende sie sind uber
    und uns von was wie zu zum zur besuche lies zeig zeige sag sage bezahle
    au aux avec ce ces dans de des du elle en est et il ils je la le les leur
    ma merci mes moi mon ne nous ou par pas pour que qui sa se ses sil son
    sur ta te toi ton tu un une vos votre vous visite lis envoie montre dis
    paie al con del el ella ellos esta este gracias las lo los mi mis para
    por favor se su sus te tu una uno visita lee envia muestra dime paga
    agli ai alla alle che da dei della delle di gli il io nel nella per
    grazie sul tra mio mia tuo tua leggi invia mostra dimmi
    ao aos as com da das do dos em na nas no nos obrigado obrigada pra voce
    um uma meu minha mande envie mostre diga
    een het van voor op met naar alsjeblieft bedankt ik mij jij je u wij bezoek
    lees stuur toon zeg betaal"""
ORDINARY_WORDS: Final = frozenset(f"{_ORDINARY} {_ORDINARY_OTHER}".split())


def _ordinary_ends(words: list[str]) -> bool:
    """True when ``words`` start or end with an ordinary word of requests
    (``ORDINARY_WORDS``)."""
    return bool(words) and (words[0] in ORDINARY_WORDS or words[-1] in ORDINARY_WORDS)


def link_keys(text: str) -> list[tuple[str, ...]]:
    """The forms by which a request can name a record through one of its
    trusted field values: the value whole (:func:`link_forms`), and for a
    file name its stem of two or more words without the extension ("the
    grocery list" names ``grocery-list.docx``; separators fold in the token
    form). A stem shared by two records names neither (their keys collide).

    A name whose words (a file name's stem) start or end with an ordinary
    word of requests is a run of any request's words (``the-bill.txt``,
    ``pay-the-bill-bill-december-2023.txt``, ``please pay``): its stem names
    nothing, and the whole name only where the request writes it as one
    word (``'to-do.txt'``), not as words apart.
    """
    whole = link_forms(text)
    if whole is None:
        return []
    folded = canonical(text[:_MAX_LEAF_CHARS]).text.strip()
    m = _FILE_NAME.fullmatch(folded)
    stem = link_forms(m.group(1)) if m is not None else None
    words = _TOKEN.findall(m.group(1) if m is not None else folded)
    if _ordinary_ends(words):
        # One word alone ("please") is written as one word by any request.
        return [whole[1:]] if len(_TOKEN.findall(folded)) > 1 else []
    return [whole] if stem is None else [whole, stem]


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


#: The verdict of a call whose every value not traced to the user comes
#: from the content of a record the user's request names (delegation: "pay
#: the bill 'bill-december-2023.txt'"): asked, never run unasked, never
#: refused as injected.
DELEGATED: Final = "delegated"
#: A value that identifies one document by itself: a file name with its
#: extension, a path, a URL or host, an e-mail address (no white space; a
#: dot, a slash or an at sign in it).
_DOCUMENT_ID: Final = re.compile(r"[^\s]*[./@][^\s]*")


def named_document(run: AgentRun, arguments: Mapping[str, Any] | None) -> str | None:
    """The link key of the document a call reads when the user's request
    names it: every checked value of the arguments identifies a document by
    itself (``bill-december-2023.txt``, ``www.dora-website.com``), is at
    least six characters long and is held, whole, by the top run's request
    or trusted data (never by untrusted content alone, a linked record or a
    sub-agent's request). None otherwise: a call with no checked value, or
    one value the user did not give, names nothing."""
    if not arguments:
        return None
    key: str | None = None
    for where, forms in checked_values(arguments):
        forms = forms[1:] if forms[:1] == (NAME,) else forms
        if where.startswith("[") or not forms or forms[0].startswith(("#", "\x01")):
            return None
        if not run.requested(forms):
            return None
        if key is None:
            key = forms[-1]  # glued, as ``RecordLinks`` keys records
    if key is None:
        return None
    for value in arguments.values():
        if not isinstance(value, str):
            return None
        folded = canonical(value[:_MAX_LEAF_CHARS]).text.strip()
        if len(folded) < 6 or not _DOCUMENT_ID.fullmatch(folded):
            return None
    return key


def decide(
    run: AgentRun,
    arguments: Mapping[str, Any] | None,
    *,
    free_text: frozenset[str] | None = None,
) -> tuple[str, tuple[str, ...]]:
    """I12 provenance of a call: (verdict, the argument paths that decided).

    ``traced`` needs every checked value in trusted data; one value found
    only in untrusted content makes the call ``injected``, unless every
    such value is in the content of a record the user's request names
    (``delegated``: asked); a value in neither, no checked value, or
    arguments the integration did not pass make it ``untraced``.
    """
    if not run.has_provenance:
        return "no_provenance", ()
    if arguments is None:
        return "untraced", ()
    verdicts = [
        (where, forms, _verdict(run, forms))
        for where, forms in checked_values(arguments, free_text=free_text)
    ]
    injected = [(where, forms) for where, forms, v in verdicts if v == INJECTED]
    untraced = tuple(where for where, _, v in verdicts if v not in (TRACED, INJECTED))
    if injected:
        paths = tuple(where for where, _ in injected)
        if all(run.delegated_from(_core(forms)) for _, forms in injected):
            return DELEGATED, paths + untraced
        return INJECTED, paths
    if untraced or not verdicts:
        return "untraced", untraced
    return TRACED, ()


def delegation_sources(
    run: AgentRun,
    arguments: Mapping[str, Any],
    *,
    free_text: frozenset[str] | None = None,
) -> tuple[str, ...]:
    """Where the delegated values of a call came from: the sources of the
    records the user's request names (``tool.read_file(file_path)``,
    ``tool.search_emails[sender]``), never a value."""
    found: list[str] = []
    for _, forms in checked_values(arguments, free_text=free_text):
        if _verdict(run, forms) == INJECTED:
            for source in run.delegated_from(_core(forms)):
                if source not in found:
                    found.append(source)
    return tuple(found)


def _core(forms: tuple[str, ...]) -> tuple[str, ...]:
    return forms[1:] if forms[:1] in ((WORDING,), (LONG_VALUE,), (NAME,)) else forms


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
    if forms[:1] == (NAME,):
        # An address, a URL, an account: the request vouches for it only
        # where it names it whole (not ``website.com`` of
        # ``www.dora-website.com``).
        return run.provenance(forms[1:], whole_name=True)
    return run.provenance(forms)
