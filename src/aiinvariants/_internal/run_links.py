"""The records a run's user request names (I12 provenance).

A *linked* record is one the user identified: one of its trusted fields
(a file name, a sender, a channel) holds, whole, a value of the request,
and no other record seen in the run holds that value. Two things follow:

- its names and ids are the user's too (they trace, even where untrusted
  text names the same short id), never its addresses, URLs or accounts;
- its *content* (the fields its writer filled) is what the user handed the
  task to: a value found only there is *delegated* ("pay the bill
  'bill-december-2023.txt'", "do what the e-mail from david.smith says"):
  asked, not refused as injected.

A document a call reads by a name the request holds whole (``read_file``
of ``bill-december-2023.txt``, ``get_webpage`` of ``www.dora-website.com``)
is linked the same way for delegation: its whole text is the record's
content.

A *container* is named the same way through a field a tool declares under
``container_fields`` (a message's channel): the content of every record
lying in it delegates, no record in it is identified (the value many
records share names none of them), and a record is in it only by its own
container field holding that one value. The container's name still makes
a record that another field of that value would identify ambiguous (a
user named after the channel): it stands for many records.

What an attacker controls and why it does not link:

- a record of the same value (a second file of the same name, a lookalike
  name the canonical form folds to it, the name without its separators:
  ``grocerylist.docx``, ``todo.txt``): the value is ambiguous, and
  neither record links (nor delegates) from then on;
- a record that only *mentions* the name in its content: only trusted
  fields link;
- a record the run itself wrote (returned by a tool whose output is
  trusted: ``create_file``): its content came from the model, which the
  injection may steer, so a value of that name never delegates;
- a record named by a sub-agent's request or by untrusted text: only the
  top run's request and trusted data name records;
- a record named after ordinary words of the request (``the-bill.txt``):
  ``link_keys`` drops names that start or end with one, unless the request
  writes the name as one word.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

from aiinvariants._internal.provenance import (
    is_destination,
    link_keys,
    result_records,
    result_texts,
)
from aiinvariants._internal.provenance_index import ProvenanceIndex

__all__ = ["MAX_LINKED_RECORDS", "RecordLinks"]

#: At most this many records identified by the user's request are kept, each
#: with at most ``_LINK_KEYS`` keys of ids and ``_CONTENT_KEYS`` keys of
#: content; past that no more records are linked.
MAX_LINKED_RECORDS: Final = 256
_LINK_KEYS: Final = 4096
_CONTENT_KEYS: Final = 1 << 15


@dataclass
class _Linked:
    fingerprint: int
    ids: ProvenanceIndex
    source: str
    content: ProvenanceIndex | None = None
    #: False for a record whose only link to the request is a list field (a
    #: cc, a share list: an audience its writer chose). It still makes a
    #: key ambiguous, but neither traces its ids nor delegates its content.
    naming: bool = True


class RecordLinks:
    """The records of one run that its user request names (kept by the top
    run). Thread-safe."""

    __slots__ = ("_containers", "_created", "_links", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (tool, container key) -> the content of the records in it (never
        # ambiguous: a container holds many records). Per tool: the user is
        # told which tool's container a value came from, never another's.
        self._containers: dict[tuple[str, str], _Linked] = {}
        # link key -> the record, or None once two records share the key.
        self._links: dict[str, _Linked | None] = {}
        # keys of records that a trusted output returned (the run wrote them)
        self._created: set[str] = set()

    def link(
        self,
        value: Any,
        *,
        source: str,
        trusted_fields: frozenset[str],
        untrusted: bool,
        requested: ProvenanceIndex,
        container_fields: frozenset[str] = frozenset(),
    ) -> None:
        """Link the records of a tool result that ``requested`` (the top
        run's request and trusted data) names by a trusted field, and the
        content of the records lying in a container it names by one of
        ``container_fields``."""
        found = result_records(value, trusted_fields, container_fields)
        for texts, content, single, containers in found:
            if untrusted and containers:
                self._contain(
                    [
                        forms[-1]
                        for text in containers
                        for forms in link_keys(text)
                        if requested.holds_name(forms)
                    ],
                    content,
                    source=f"{source}[container]",
                )
            # Keyed by the glued form: ``grocerylist.docx`` and ``todo.txt``
            # collide with ``grocery-list.docx`` and ``to-do.txt`` (a request
            # naming one holds the other's glued form), so an attacker's
            # record spelled without separators makes the name ambiguous
            # instead of being linked beside the user's.
            keys = [
                forms[-1]
                for text in texts
                for forms in link_keys(text)
                if requested.holds_name(forms)
            ]
            if not keys:
                continue
            # The record is the one the user named only when a field that
            # identifies it names it (its file name, its sender), not an
            # audience its writer chose (a cc, a share list: eve copies the
            # address the request gives): only then do its ids trace and its
            # content delegate.
            named = any(
                requested.holds_name(forms)
                for text in single
                for forms in link_keys(text)
            )
            # The record's names and ids, never its parties: an address,
            # a URL or an account of a record the user named (its owner,
            # its sender) is no destination the user chose.
            ids = ProvenanceIndex(cap=_LINK_KEYS)
            for text in texts:
                if not is_destination(text):
                    ids.add(text)
            record = _Linked(
                hash(tuple(sorted(texts))), ids, f"{source}[record]", naming=named
            )
            delegates = untrusted and named
            self._add(keys, record, content if delegates else [], created=not untrusted)

    def _contain(self, keys: list[str], texts: list[str], *, source: str) -> None:
        """Add a record's content to the containers the request names by
        ``keys``: every record in a container delegates, none is
        identified (no ids trace); a record of the same key is ambiguous."""
        if not keys:
            return
        # The container's name still stands for many records: a record that
        # a field of the same value would identify (a user named after the
        # channel, sending a direct message) is ambiguous, as it was when
        # the channel's messages counted among the records of that name.
        # The stand-in neither traces ids nor delegates (``naming=False``).
        self._add(
            keys,
            _Linked(hash(("container",)), ProvenanceIndex(cap=1), source, naming=False),
            [],
            created=False,
        )
        if not texts:
            return
        with self._lock:
            for key in keys:
                entry = self._containers.get((source, key))
                if entry is None:
                    if len(self._containers) >= MAX_LINKED_RECORDS:
                        continue
                    entry = _Linked(
                        hash(("container", source, key)),
                        ProvenanceIndex(cap=1),
                        source,
                        ProvenanceIndex(cap=_CONTENT_KEYS, aligned=True),
                    )
                    self._containers[source, key] = entry
                content = entry.content
                if content is not None:
                    for text in texts:
                        content.add(text)

    def named_document(self, key: str, value: Any, *, source: str) -> None:
        """Link the whole text a call returned for a document the request
        names by ``key``: its content delegates."""
        texts = [text for _, text in result_texts(value, frozenset())]
        record = _Linked(hash(("document", source)), ProvenanceIndex(cap=1), source)
        self._add([key], record, texts, created=False)

    def _add(
        self, keys: list[str], record: _Linked, texts: list[str], *, created: bool
    ) -> None:
        # Content is indexed strictly (numbers standing on their own): a
        # value is delegated only where the record plainly holds it.
        content = None
        if texts:
            content = ProvenanceIndex(cap=_CONTENT_KEYS, aligned=True)
            for text in texts:
                content.add(text)
        with self._lock:
            if created:
                self._created.update(keys)
            for key in keys:
                if key not in self._links:
                    if len(self._links) < MAX_LINKED_RECORDS:
                        record.content = content
                        self._links[key] = record
                    continue
                entry = self._links[key]
                if entry is None:
                    continue
                if entry.fingerprint != record.fingerprint:
                    self._links[key] = None
                elif texts and entry.content is None:
                    entry.content = content
                elif texts and entry.content is not None:
                    # The same record read again: what it holds now counts.
                    for text in texts:
                        entry.content.add(text)

    def linked(self, forms: tuple[str, ...]) -> bool:
        """True when a record the user's request identifies holds ``forms``
        among its names and ids."""
        with self._lock:
            entries = [
                entry
                for entry in self._links.values()
                if entry is not None and entry.naming
            ]
        return any(
            not entry.ids.overflowed and entry.ids.contains(forms) for entry in entries
        )

    def delegated_from(self, forms: tuple[str, ...]) -> tuple[str, ...]:
        """The sources of the linked records whose content holds ``forms``
        (none for a record the run wrote or whose content overflowed)."""
        with self._lock:
            entries = [
                entry
                for key, entry in self._links.items()
                if entry is not None and entry.naming and key not in self._created
            ]
            entries += list(self._containers.values())
        found: list[str] = []
        for entry in entries:
            content = entry.content
            if content is None or content.overflowed or not content.holds_name(forms):
                continue
            if entry.source not in found:
                found.append(entry.source)
        return tuple(found)
