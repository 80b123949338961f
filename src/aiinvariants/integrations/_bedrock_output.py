"""Every text a Bedrock model returns, through the output pipeline.

Bedrock answers come in several shapes: the Converse document (text,
reasoning, tool-use input, citations, ``additionalModelResponseFields``),
InvokeModel bodies whose JSON depends on the model family (Anthropic
``content``, Llama ``generation``, Titan ``outputText``, Mistral
``outputs``, OpenAI-style ``choices``…), and event streams of either.
Rather than one reader per family, the walkers here treat **every string
as content** except under a short list of structural keys (ids, roles,
stop reasons, usage, metadata). JSON-valued fields (tool-use input,
``arguments``, ``partial_json``) are decoded before scanning, so a secret
written with ``\\uXXXX`` escapes is seen decoded.

Streams keep one :class:`~aiinvariants.filters.StreamGuard` per field path;
tool-use input is held until its block ends, decoded, scanned and released
in one event. Text held back at the end of a field is released in an extra
event shaped like the last one that carried that field, before the next
event that does not carry it.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Callable
from typing import Any, Final

from aiinvariants._errors import OutputBlocked
from aiinvariants.filters import OutputCheck, StreamGuard

__all__ = [
    "EventWalker",
    "InvokeStreamFilter",
    "check_across",
    "check_document",
    "check_json_body",
]

Check = Callable[[str], str]
Path = tuple[Any, ...]

#: Keys whose values are never model text: their subtrees are not scanned.
STRUCTURAL: Final = frozenset(
    {
        "ResponseMetadata",
        "usage",
        "metrics",
        "performanceConfig",
        "serviceTier",
        "stopReason",
        "stop_reason",
        "finish_reason",
        "completionReason",
        "role",
        "toolUseId",
        "id",
        "type",
        "format",
        "status",
        "model",
        "index",
        "contentBlockIndex",
        "signature",
        "redactedContent",
        "p",
        "amazon-bedrock-invocationMetrics",
        "prompt_token_count",
        "generation_token_count",
        "inputTextTokenCount",
        "Code",
        "object",
        "created",
    }
)
#: Keys whose string value is a JSON document written by the model.
JSON_TEXT: Final = frozenset({"arguments", "partial_json"})
#: Keys whose value is a free JSON document (keys are model text too).
DOCUMENT: Final = frozenset({"input", "additionalModelResponseFields"})
#: Containers of events that open a block or carry metadata: their strings
#: (tool names, titles, server-tool results) are checked whole, not streamed.
WHOLE_CONTAINERS: Final = frozenset(
    {"contentBlockStart", "start", "content_block", "message", "metadata", "trace"}
)
WHOLE_KEYS: Final = frozenset({"name", "title", "source", "url"})
#: Keys that mark the last event of a field in some model families.
_FINAL_KEYS: Final = ("stop_reason", "stopReason", "finish_reason", "completionReason")
_BLOCK_KEYS: Final = ("contentBlockIndex", "index")
#: Blocks whose ``content`` is part of the answer's text (a reader sees it
#: between the plain text blocks around it).
_ANSWER_WRAPPERS: Final = frozenset({"citationsContent"})
#: A key that is a plain word (letters, ``_``, ``-``): a provider's own.
_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z_-]{0,63}")
#: Leaf kinds checked in the event that carries them (never streamed).
_AT_ONCE: Final = frozenset({"whole", "document"})
#: The key a bare string or list event is boxed under (no JSON key of an
#: event can be it: it is not text a provider sends).
_BOX: Final = "\x00aiinvariants-box"
#: How much of a field's earlier blocks the cross-block detector keeps.
_JOINT_TAIL: Final = 4096


def _check_key(key: Any, check: Check) -> None:
    """Refuse a key of the answer (outside a document) that carries a finding.

    Keys outside documents are the provider's own words (``generation``,
    ``stop_reason``); a key that is not a plain word (a family the guard
    does not know may put model text there) is checked, and any finding in
    it blocks: a key cannot be redacted in place.
    """
    if isinstance(key, str) and not _PLAIN_KEY.fullmatch(key) and check(key) != key:
        raise OutputBlocked(
            "a key of the answer carries a finding", code="output_blocked"
        )


def _document(value: Any, check: Check) -> Any:
    """A free JSON document: every key and every string is model text."""
    if isinstance(value, str):
        return check(value)
    if isinstance(value, dict):
        return {
            (check(k) if isinstance(k, str) else k): _document(v, check)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_document(v, check) for v in value]
    return value


def _loads(raw: str | bytes) -> tuple[bool, Any]:
    """``(True, doc)`` for JSON, ``(False, None)`` otherwise.

    A ``JSONDecodeError`` keeps the whole text it failed on (``doc``); a
    check that raises while it is being handled would chain it, so callers
    act on the result only after the ``except`` block is over.
    """
    try:
        return True, json.loads(raw)
    except ValueError:
        return False, None


def _json_text(text: str, check: Check) -> str:
    """A JSON-valued string: decoded, scanned, re-encoded (raw if not JSON)."""
    parsed, doc = _loads(text)
    if not parsed:
        return check(text)
    if isinstance(doc, (dict, list)):
        return json.dumps(_document(doc, check), ensure_ascii=False)
    return check(text)


def check_document(value: Any, check: Check) -> Any:
    """``value`` with every model-written string passed through ``check``."""
    if isinstance(value, str):
        return check(value)
    if isinstance(value, list):
        return [check_document(v, check) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        _check_key(key, check)
        if key in STRUCTURAL:
            out[key] = item
        elif key in DOCUMENT:
            out[key] = _document(item, check)
        elif key in JSON_TEXT and isinstance(item, str):
            out[key] = _json_text(item, check)
        else:
            out[key] = check_document(item, check)
    return out


def check_across(value: Any, scan: Callable[[str], OutputCheck]) -> None:
    """Refuse a finding split across two strings of the same field.

    A model may answer in several text blocks (citations split an answer
    into many); a caller that joins them must not get a secret that no
    single block holds. Strings at the same path (list positions ignored)
    are joined in order and scanned once more; a finding that crosses a
    boundary raises ``OutputBlocked``.
    """
    groups: dict[Path, list[str]] = {}
    _group(value, (), groups)
    for texts in groups.values():
        if len(texts) < 2:
            continue
        bounds: list[int] = []
        for text in texts[:-1]:
            bounds.append((bounds[-1] if bounds else 0) + len(text))
        for finding in scan("".join(texts)).findings:
            if finding.action != "flag" and any(
                finding.start < b < finding.end for b in bounds
            ):
                raise OutputBlocked(
                    f"output blocked by {finding.rule_id}: a finding spans "
                    "two blocks of the answer",
                    code="output_blocked",
                    invariant=finding.invariant,
                )


def _group(value: Any, path: Path, groups: dict[Path, list[str]]) -> None:
    if isinstance(value, str):
        groups.setdefault(path, []).append(value)
    elif isinstance(value, list):
        for item in value:
            _group(item, path, groups)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in _ANSWER_WRAPPERS and isinstance(item, dict):
                # Converse's cited answer text is answer text: it joins the
                # plain text blocks around it, as a reader sees them.
                _group(item.get("content"), path, groups)
                rest = {k: v for k, v in item.items() if k != "content"}
                _group(rest, (*path, key), groups)
            elif key not in STRUCTURAL and key not in DOCUMENT and key not in JSON_TEXT:
                _group(item, (*path, key), groups)


def check_json_body(raw: bytes, check: Check) -> bytes:
    """An InvokeModel response body, checked.

    A JSON body is walked with :func:`check_document`; any other body is
    decoded as UTF-8 text and checked whole (a body that is not text is
    refused: what cannot be read cannot be shown safe). Text with NUL
    characters is not text either (UTF-16 without a byte-order mark decodes
    as "UTF-8" with a NUL after each letter, and no matcher reads it).
    """
    parsed, doc = _loads(raw)
    if not parsed:
        text = _utf8_text(raw)
        if text is None or "\x00" in text:
            raise OutputBlocked(
                "the model returned a body that is neither JSON nor text",
                code="unreadable_output",
            )
        return check(text).encode("utf-8")
    # The caller gets the document that was checked, re-encoded, never the
    # raw bytes: JSON with a duplicate key parses to its last value here,
    # while the raw bytes still hold the first for any other reader.
    checked = check_document(doc, check)
    return json.dumps(checked, ensure_ascii=False).encode("utf-8")


def _utf8_text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # its ``object`` is the whole body
        return None


def streaming_body(raw: bytes) -> Any:
    """A botocore ``StreamingBody`` over ``raw`` (what InvokeModel returns)."""
    from botocore.response import (  # type: ignore[import-untyped,unused-ignore]
        StreamingBody,
    )

    return StreamingBody(io.BytesIO(raw), len(raw))


# -- streams ----------------------------------------------------------------------


class _Field:
    """One streamed field: its guard (or JSON buffer) and the last event."""

    def __init__(self, guard: StreamGuard | None, template: dict[str, Any]) -> None:
        self.guard = guard
        self.buffer: list[str] = []
        self.template = template

    def adopt(self, guard: StreamGuard) -> StreamGuard:
        """Give a field that was buffered JSON a guard (its kind changed)."""
        self.guard = guard
        return guard


class EventWalker:
    """Filters a stream of decoded events (dicts), field path by field path.

    Args:
        check: checks a whole text (tool-use input, non-streamed leaves).
        stream: makes a fresh stream guard for a streamed text field.
    """

    def __init__(self, check: Check, stream: Callable[[], StreamGuard]) -> None:
        self.check = check
        self._stream = stream
        self._fields: dict[Path, _Field] = {}
        # One detector per field path across blocks (the block index left
        # out): it sees the blocks' texts joined, and is closed (scanned to
        # the end) whenever a block of that field ends, before the block's
        # held-back text is released; then it restarts from the last
        # _JOINT_TAIL characters, so a blocking finding split across two
        # blocks raises before the second part is released.
        self._joint: dict[Path, StreamGuard] = {}
        self._tails: dict[Path, str] = {}

    def process(self, event: Any) -> list[Any]:
        if not isinstance(event, dict):
            if not isinstance(event, (str, list)):
                return [event]
            # A JSON chunk that is a bare string or list (a family the
            # walker does not know) is content too: it is walked in a box,
            # its strings streamed like any field, and unboxed again.
            return [_unbox(e) for e in self.process({_BOX: event})]
        if self._text_delta(event):
            return [event]
        leaves: list[tuple[Path, Any, Any, str]] = []
        _leaves(
            event,
            (_block(event),),
            leaves,
            json_field=False,
            whole=False,
            check=self.check,
        )
        for _, holder, key, kind in leaves:
            if kind == "whole":
                holder[key] = self.check(holder[key])
            elif kind == "document":
                holder[key] = _document(holder[key], self.check)
        leaves = [leaf for leaf in leaves if leaf[3] not in _AT_ONCE]
        carried = {path for path, *_ in leaves}
        out = [self._release(p) for p in list(self._fields) if p not in carried]
        final = _is_final(event)
        for path, holder, key, kind in leaves:
            value = holder[key]
            if kind == "json":
                field = self._field(path, event, text=False)
                field.buffer.append(value)
                holder[key] = ""
                continue
            field = self._field(path, event, text=True)
            guard = field.guard or field.adopt(self._stream())
            self._detect(path, value)
            safe = guard.feed(value)
            if final:
                self._settle(path)
                safe += guard.close()
                del self._fields[path]
            holder[key] = safe
        for path in carried:
            if path in self._fields:
                self._fields[path].template = event
        return [*(_unbox(e) for e in out if e is not None), event]

    def _text_delta(self, event: dict[str, Any]) -> bool:
        """The common case, fast: a Converse text delta of the open field.

        Same result as the general path for ``{"contentBlockDelta":
        {"contentBlockIndex": i, "delta": {"text": ...}}}`` when no other
        field is open.
        """
        body = event.get("contentBlockDelta") if len(event) == 1 else None
        if type(body) is not dict:
            return False
        delta = body.get("delta")
        if type(delta) is not dict or len(delta) != 1 or len(body) > 2:
            return False
        text = delta.get("text")
        if type(text) is not str:
            return False
        index = body.get("contentBlockIndex")
        block = index if type(index) is int else None
        path: Path = (block, "contentBlockDelta", "delta", "text")
        fields = self._fields
        field = fields.get(path)
        if field is None:
            if fields:
                return False
            field = self._field(path, event, text=True)
        elif len(fields) != 1:
            return False
        guard = field.guard
        if guard is None:
            return False
        self._detect(path, text)
        delta["text"] = guard.feed(text)
        field.template = event
        return True

    def finish(self) -> list[Any]:
        out = [self._release(p) for p in list(self._fields)]
        for joint in self._joint.values():
            joint.close()
        return [_unbox(e) for e in out if e is not None]

    def _detect(self, path: Path, text: str) -> None:
        key = path[1:]
        joint = self._joint.get(key)
        if joint is None:
            joint = self._joint[key] = self._stream()
            joint.feed(self._tails.get(key, ""))
        joint.feed(text)
        self._tails[key] = (self._tails.get(key, "") + text)[-_JOINT_TAIL:]

    def _settle(self, path: Path) -> None:
        """Scan the joined texts of ``path``'s field to the end, now."""
        joint = self._joint.pop(path[1:], None)
        if joint is not None:
            joint.close()

    def _field(self, path: Path, event: dict[str, Any], *, text: bool) -> _Field:
        field = self._fields.get(path)
        if field is None:
            guard = self._stream() if text else None
            field = self._fields[path] = _Field(guard, event)
        return field

    def _release(self, path: Path) -> dict[str, Any] | None:
        field = self._fields.pop(path)
        if field.guard is not None:
            self._settle(path)
            rest = field.guard.close()
        else:
            rest = _json_text("".join(field.buffer), self.check)
        if not rest:
            return None
        event = copy.deepcopy(field.template)
        blank: list[tuple[Path, Any, Any, str]] = []
        _leaves(event, (_block(event),), blank, json_field=False, whole=False)
        for leaf_path, holder, key, kind in blank:
            if kind not in _AT_ONCE:
                holder[key] = rest if leaf_path == path else ""
        return event


def _unbox(event: Any) -> Any:
    if isinstance(event, dict) and len(event) == 1 and _BOX in event:
        return event[_BOX]
    return event


def _block(event: dict[str, Any]) -> Any:
    """The content-block index an event belongs to (None when it has none)."""
    for holder in (event, *(v for v in event.values() if isinstance(v, dict))):
        for key in _BLOCK_KEYS:
            if isinstance(holder.get(key), int):
                return holder[key]
    return None


def _is_final(event: dict[str, Any]) -> bool:
    return any(event.get(key) is not None for key in _FINAL_KEYS)


def _leaves(
    value: Any,
    path: Path,
    out: list[tuple[Path, Any, Any, str]],
    *,
    json_field: bool,
    whole: bool,
    check: Check | None = None,
) -> None:
    """Collect (path, holder, key, kind) of every content string in ``value``.

    ``kind`` is ``whole`` for a string checked at once (block starts,
    metadata, names and titles), ``document`` for a decoded JSON document
    checked at once (keys too), ``json`` for a JSON-valued string field
    (buffered until it ends) and ``text`` for streamed text. List positions
    are part of the path.
    """
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        if check is not None:
            _check_key(key, check)
        if key in STRUCTURAL:
            continue
        if key in DOCUMENT and isinstance(item, (dict, list)) and not json_field:
            # A decoded document (``additionalModelResponseFields``, a tool
            # block's ``input``) arrives whole: checked at once, keys too,
            # as in a non-streamed answer.
            out.append(((*path, key), value, key, "document"))
            continue
        inner = json_field or key in JSON_TEXT or key in DOCUMENT
        at_once = whole or key in WHOLE_CONTAINERS
        if isinstance(item, str):
            if at_once or key in WHOLE_KEYS:
                kind = "whole"
            else:
                kind = "json" if inner else "text"
            out.append(((*path, key), value, key, kind))
        elif isinstance(item, (dict, list)):
            _leaves(
                item, (*path, key), out, json_field=inner, whole=at_once, check=check
            )


class InvokeStreamFilter:
    """InvokeModelWithResponseStream events: ``{"chunk": {"bytes": b"..."}}``.

    Each chunk's bytes are the model family's own stream event in JSON; it
    is decoded, passed through an :class:`EventWalker` and re-encoded.
    """

    def __init__(self, walker: EventWalker) -> None:
        self._walker = walker

    def process(self, event: Any) -> list[Any]:
        chunk = event.get("chunk") if isinstance(event, dict) else None
        raw = chunk.get("bytes") if isinstance(chunk, dict) else None
        if not isinstance(raw, (bytes, bytearray)):
            return [check_document(event, self._walker.check)]
        parsed, doc = _loads(bytes(raw))
        if not parsed:
            raise OutputBlocked(
                "a stream chunk of the model is not JSON",
                code="unreadable_output",
            )
        return [self._wrap(e) for e in self._walker.process(doc)]

    def finish(self) -> list[Any]:
        return [self._wrap(e) for e in self._walker.finish()]

    @staticmethod
    def _wrap(doc: Any) -> dict[str, Any]:
        raw = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return {"chunk": {"bytes": raw}}
