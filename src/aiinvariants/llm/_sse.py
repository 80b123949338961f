"""Server-sent events: framing, and the per-provider stream rewriters.

:class:`SSERewriter` cuts a byte stream into events, hands each decoded
JSON event to a rewriter and frames what it returns again, so the SDK reads
a valid stream. A rewriter passes every text of every event through the
output pipeline: deltas through one StreamGuard per field path (nothing is
emitted before it is checked), JSON-valued deltas (tool arguments) whole at
the end of their field, whole values (snapshots, ``*.done`` events) through
the pipeline directly. The text a guard releases when its field ends is
sent in an extra delta event of the same kind, before the event that ends
the field.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Final, Protocol

from aiinvariants._errors import PolicyError
from aiinvariants.filters import StreamGuard
from aiinvariants.llm._walk import (
    JSON_FIELDS,
    NOT_JSON,
    STRUCTURAL,
    FieldStreams,
    is_token_list,
    loads,
    walk,
)

__all__ = [
    "ChatEvents",
    "MessageEvents",
    "ResponsesEvents",
    "SSERewriter",
    "WholeEvents",
]

Enforce = Callable[[str], str]
Event = tuple[str | None, Any]

#: An event larger than this is refused (a stream must not grow unbounded).
MAX_EVENT: Final = 16 * 1024 * 1024
#: Fields of a streamed delta that arrive whole (checked as they are).
_WHOLE_IN_DELTA: Final = frozenset({"name", "url", "title"})


class Rewriter(Protocol):
    """Rewrites the decoded events of one stream."""

    def process(self, name: str | None, doc: Any) -> list[Event]:
        """The events to send for one event."""
        ...

    def finish(self) -> list[Event]:
        """The events to send when the stream ends."""
        ...


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dump(doc: Any) -> str:
    return _ENCODER.encode(doc)


class SSERewriter:
    """Frames a byte stream into events and back through a :class:`Rewriter`."""

    def __init__(self, rewriter: Rewriter, enforce: Enforce) -> None:
        self._rewriter = rewriter
        self._enforce = enforce
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._finished = False

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to send for ``chunk`` (whole events only)."""
        return b"".join(self.events(chunk))

    def events(self, chunk: bytes) -> Iterator[bytes]:
        """The bytes to send for ``chunk``, one event at a time."""
        text = self._buffer + self._decoder.decode(chunk)
        held = ""
        if text.endswith("\r"):
            text, held = text[:-1], "\r"  # may be the first half of a CRLF
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        self._buffer = ""
        start = 0
        try:
            while True:
                end = text.find("\n\n", start)
                if end < 0:
                    break
                event = self._event(text[start:end])
                start = end + 2
                if event:
                    yield event.encode()
        finally:
            self._buffer = text[start:] + held
        if len(self._buffer) > MAX_EVENT:
            raise PolicyError(
                "a streamed event is larger than 16 MiB; refused unchecked"
            )

    def end(self) -> bytes:
        """The bytes to send when the provider stream ends."""
        rest = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        out = self._event(rest) if rest.strip() else ""
        if not self._finished:
            self._finished = True
            out += self._frame(self._rewriter.finish())
        return out.encode()

    def _event(self, raw: str) -> str:
        name: str | None = None
        data: list[str] = []
        extra: list[str] = []
        if "\n" not in raw and raw.startswith("data: "):
            data.append(raw[6:])  # the common event: one data line
        else:
            for line in raw.split("\n"):
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
                elif field in {"id", "retry"}:
                    extra.append(f"{field}: {value}\n")
        if not data:
            return "".join(extra) + ("\n" if extra else "")
        payload = "\n".join(data)
        if payload.strip() == "[DONE]":
            tail = ""
            if not self._finished:
                self._finished = True
                tail = self._frame(self._rewriter.finish())
            return tail + "".join(extra) + "data: [DONE]\n\n"
        doc = loads(payload)
        if doc is NOT_JSON:
            safe = self._enforce(payload)
            head = f"event: {name}\n" if name else ""
            lines = "".join(f"data: {line}\n" for line in safe.split("\n"))
            return head + lines + "\n"
        return "".join(extra) + self._frame(self._rewriter.process(name, doc))

    @staticmethod
    def _frame(events: list[Event]) -> str:
        out = []
        for name, doc in events:
            head = f"event: {name}\n" if name else ""
            out.append(f"{head}data: {_dump(doc)}\n\n")
        return "".join(out)


class WholeEvents:
    """Every event checked whole (for events that carry no deltas)."""

    def __init__(self, fields: FieldStreams) -> None:
        self.fields = fields

    def process(self, name: str | None, doc: Any) -> list[Event]:
        return [(name, walk(doc, self.fields.enforce))]

    def finish(self) -> list[Event]:
        return []


def _put(target: dict[str, Any], path: tuple[Any, ...], rest: str) -> None:
    """Append ``rest`` at ``path`` in a delta (list steps are tool indexes)."""
    node: Any = target
    steps = list(path)
    while len(steps) > 1:
        step = steps.pop(0)
        if isinstance(steps[0], int):
            items = node.setdefault(step, [])
            index = steps.pop(0)
            match = next((i for i in items if i.get("index") == index), None)
            if match is None:
                match = {"index": index}
                items.append(match)
            node = match
        else:
            node = node.setdefault(step, {})
    last = steps[0]
    node[last] = (node.get(last) or "") + rest


class ChatEvents:
    """Chat-completion (and legacy completion) chunks."""

    def __init__(self, fields: FieldStreams) -> None:
        self.fields = fields
        self._base: dict[str, Any] = {}

    def process(self, name: str | None, doc: Any) -> list[Event]:
        if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
            return [(name, walk(doc, self.fields.enforce))]
        if not self._base:
            self._base = {
                k: doc[k] for k in ("id", "object", "created", "model") if k in doc
            }
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if key == "choices":
                out[key] = [self._choice(c) for c in value]
            elif key in STRUCTURAL or value is None:
                out[key] = value
            else:
                out[key] = walk(value, self.fields.enforce, key)
        return [(name, out)]

    def _choice(self, choice: Any) -> Any:
        if not isinstance(choice, dict):
            return walk(choice, self.fields.enforce)
        index = choice.get("index", 0)
        out: dict[str, Any] = {}
        for key, value in choice.items():
            if key == "delta" and isinstance(value, dict):
                out[key] = self._delta(index, (), value)
            elif key == "text" and isinstance(value, str):
                out[key] = self.fields.feed_text((index, ("text",)), value)
            elif key == "logprobs" and isinstance(value, dict):
                out[key] = self._logprobs(index, value)
            elif key in STRUCTURAL or value is None:
                out[key] = value
            else:
                out[key] = walk(value, self.fields.enforce, key)
        if choice.get("finish_reason") is not None:
            self._close(index, out)
        return out

    def _logprobs(self, index: int, value: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, entries in value.items():
            if isinstance(entries, list) and is_token_list(entries):
                self.fields.feed_tokens((index, ("logprobs", key)), entries)
                out[key] = []
            else:
                out[key] = walk(entries, self.fields.enforce, key)
        return out

    def _delta(self, index: int, path: tuple[Any, ...], delta: dict[str, Any]) -> Any:
        out: dict[str, Any] = {}
        for key, value in delta.items():
            here = (*path, key)
            if key in STRUCTURAL:
                out[key] = value
            elif isinstance(value, str):
                if key in JSON_FIELDS:
                    self.fields.feed_json((index, here), value)
                    out[key] = ""
                elif key in _WHOLE_IN_DELTA:
                    out[key] = self.fields.feed_whole((index, here), value)
                else:
                    out[key] = self.fields.feed_text((index, here), value)
            elif isinstance(value, dict):
                out[key] = self._delta(index, here, value)
            elif isinstance(value, list):
                items = []
                for pos, item in enumerate(value):
                    if isinstance(item, dict):
                        at = item.get("index", pos)
                        items.append(self._delta(index, (*here, at), item))
                    else:
                        items.append(walk(item, self.fields.enforce))
                out[key] = items
            else:
                out[key] = value
        return out

    def _close(self, index: int, choice: dict[str, Any]) -> None:
        for key in self.fields.open_keys():
            if not (isinstance(key, tuple) and key[0] == index):
                continue
            path = key[1]
            rest, tokens = self.fields.close(key)
            if tokens is not None:
                logprobs = choice.get("logprobs")
                if not isinstance(logprobs, dict):
                    logprobs = choice["logprobs"] = {}
                logprobs[path[1]] = tokens
            if rest:
                if path == ("text",):
                    choice["text"] = (choice.get("text") or "") + rest
                else:
                    delta = choice.get("delta")
                    if not isinstance(delta, dict):
                        delta = choice["delta"] = {}
                    _put(delta, path, rest)

    def finish(self) -> list[Event]:
        indexes = sorted(
            {k[0] for k in self.fields.open_keys() if isinstance(k, tuple)}
        )
        if not indexes:
            return []
        choices = []
        for index in indexes:
            choice: dict[str, Any] = {
                "index": index,
                "delta": {},
                "finish_reason": None,
            }
            self._close(index, choice)
            choices.append(choice)
        return [(None, {**self._base, "choices": choices})]


class MessageEvents:
    """Anthropic message stream events."""

    _DELTA_TEXT: Final = {"text_delta": "text", "thinking_delta": "thinking"}

    def __init__(self, fields: FieldStreams) -> None:
        self.fields = fields
        self._kinds: dict[Hashable, str] = {}
        #: ("joined", delta type) -> the block its held text belongs to now
        self._joined: dict[Hashable, Any] = {}

    def process(self, name: str | None, doc: Any) -> list[Event]:
        kind = doc.get("type") if isinstance(doc, dict) else None
        if kind == "content_block_delta" and isinstance(doc.get("delta"), dict):
            index = doc.get("index")
            delta = doc["delta"]
            dtype = delta.get("type")
            field = self._DELTA_TEXT.get(dtype) if isinstance(dtype, str) else None
            if field is not None and isinstance(delta.get(field), str):
                # The SDK joins the text blocks for the caller
                # (get_final_text, LangChain content): one guard over all of
                # them, so a secret split over two blocks is seen; text held
                # at a block's end goes out with the next block (or at the end).
                key = ("joined", dtype)
                self._joined[key] = index
                safe = self.fields.feed_text(key, delta[field])
                return [(name, {**doc, "delta": {**delta, field: safe}})]
            if dtype == "input_json_delta" and isinstance(
                delta.get("partial_json"), str
            ):
                self._kinds[index] = "input_json_delta"
                self.fields.feed_json(index, delta["partial_json"])
                return []
        if kind in {"content_block_stop", "message_stop", "message_delta"}:
            closing = (
                [doc.get("index")]
                if kind == "content_block_stop"
                else self.fields.open_keys()
            )
            out = [e for index in closing for e in self._release(index)]
            return [*out, (name, walk(doc, self.fields.enforce))]
        return [(name, walk(doc, self.fields.enforce))]

    def _release(self, key: Any) -> list[Event]:
        rest, _ = self.fields.close(key)
        if key in self._joined:
            index = self._joined.pop(key)
            dtype = key[1]
        else:
            index = key
            dtype = self._kinds.pop(key, "text_delta")
        if not rest:
            return []
        field = (
            "partial_json" if dtype == "input_json_delta" else self._DELTA_TEXT[dtype]
        )
        delta = {"type": dtype, field: rest}
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        return [("content_block_delta", event)]

    def finish(self) -> list[Event]:
        return [e for index in self.fields.open_keys() for e in self._release(index)]


class ResponsesEvents:
    """OpenAI Responses API stream events."""

    #: delta events whose text is JSON (emitted whole when the field ends)
    _JSON_DELTAS: Final = frozenset(
        {"response.function_call_arguments", "response.mcp_call_arguments"}
    )

    #: text the SDK joins over the parts of one message item (``output_text``):
    #: one guard per item, and the parts' ``*.done`` events held to its end
    _JOINED: Final = frozenset({"response.output_text"})
    _PART_DONE: Final = frozenset({"response.output_text", "response.content_part"})

    def __init__(self, fields: FieldStreams) -> None:
        self.fields = fields
        self._last: dict[Hashable, dict[str, Any]] = {}
        self._held: dict[tuple[Any, Any], list[Event]] = {}

    @classmethod
    def _key(cls, doc: dict[str, Any], prefix: str) -> Hashable:
        if prefix in cls._JOINED:
            return (prefix, doc.get("item_id"), doc.get("output_index"))
        index = doc.get("content_index", doc.get("summary_index"))
        return (prefix, doc.get("item_id"), doc.get("output_index"), index)

    def _item_end(self, item_id: Any, output_index: Any) -> list[Event]:
        """Release a message item's joined text and its held part events."""
        out: list[Event] = []
        for key in self.fields.open_keys():
            if (
                isinstance(key, tuple)
                and len(key) == 3
                and key[0] in self._JOINED
                and (key[1] == item_id or key[2] == output_index)
            ):
                out.extend(self._release(key))
        for where in [k for k in self._held if k[0] == item_id or k[1] == output_index]:
            out.extend(self._held.pop(where))
        return out

    def process(self, name: str | None, doc: Any) -> list[Event]:
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            return [(name, walk(doc, self.fields.enforce))]
        prefix, _, tail = doc["type"].rpartition(".")
        if tail == "delta" and isinstance(doc.get("delta"), str):
            key = self._key(doc, prefix)
            out = dict(doc)
            if prefix in self._JSON_DELTAS:
                self.fields.feed_json(key, doc["delta"])
                out["delta"] = ""
            else:
                out["delta"] = self.fields.feed_text(key, doc["delta"])
            logprobs = doc.get("logprobs")
            if isinstance(logprobs, list) and is_token_list(logprobs):
                self.fields.feed_tokens(key, logprobs)
                out["logprobs"] = []
            for field, value in doc.items():
                if field not in {"delta", "logprobs"}:
                    out[field] = walk(value, self.fields.enforce, field)
            self._last[key] = out
            return [(name, out)]
        events: list[Event] = []
        if tail == "done" and prefix in self._PART_DONE:
            where = (doc.get("item_id"), doc.get("output_index"))
            checked = walk(doc, self.fields.enforce)
            self._held.setdefault(where, []).append((name, checked))
            return []
        if doc["type"] == "response.output_item.done":
            checked = walk(doc, self.fields.enforce)  # the whole item, parts joined
            item = doc.get("item")
            item_id = item.get("id") if isinstance(item, dict) else None
            return [*self._item_end(item_id, doc.get("output_index")), (name, checked)]
        if tail == "done":
            events = self._release(self._key(doc, prefix))
        return [*events, (name, walk(doc, self.fields.enforce))]

    def _release(self, key: Hashable) -> list[Event]:
        last = self._last.pop(key, None)
        rest, tokens = self.fields.close(key)
        if last is None or not (rest or tokens):
            return []
        event = {**last, "delta": rest or ""}
        if tokens is not None:
            event["logprobs"] = tokens
        return [(event["type"], event)]

    def finish(self) -> list[Event]:
        out = [e for key in self.fields.open_keys() for e in self._release(key)]
        for held in self._held.values():
            out.extend(held)
        self._held.clear()
        return out


def rewriter_for(family: str, fields: FieldStreams) -> Rewriter:
    """The stream rewriter of an endpoint family."""
    if family == "chat":
        return ChatEvents(fields)
    if family == "responses":
        return ResponsesEvents(fields)
    if family == "messages":
        return MessageEvents(fields)
    return WholeEvents(fields)


def new_fields(new_guard: Callable[[], StreamGuard], enforce: Enforce) -> FieldStreams:
    """Fresh per-stream field state."""
    return FieldStreams(new_guard, enforce)
