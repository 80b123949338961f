"""Walk a provider's decoded answer and pass every text through the pipeline.

An answer is JSON. Every string in it is model output unless its key is a
known structural field (ids, roles, types, finish reasons, timestamps,
opaque provider blobs): an unknown field is content. JSON-valued fields
(tool and function ``arguments``) are decoded before their strings are
scanned, so a secret written with ``\\uXXXX`` escapes is seen as it will be
read. A list of logprob entries (``{"token": ..., "logprob": ...}``) is
checked as the text its tokens spell.

:class:`FieldStreams` holds one :class:`~aiinvariants.filters.StreamGuard`
per streamed field path, and buffers JSON-valued fields whole, for the
stream rewriters in :mod:`aiinvariants.llm._wire`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import Any, Final

from aiinvariants._errors import PolicyError
from aiinvariants.filters import StreamGuard

__all__ = [
    "NOT_JSON",
    "STRUCTURAL",
    "FieldStreams",
    "check_json_text",
    "check_text",
    "check_tokens",
    "is_token_list",
    "loads",
    "walk",
]

Enforce = Callable[[str], str]

#: Keys whose string values are structure, not model output.
STRUCTURAL: Final = frozenset(
    {
        "id",
        "object",
        "type",
        "role",
        "model",
        "created",
        "created_at",
        "completed_at",
        "expires_at",
        "finish_reason",
        "stop_reason",
        "stop_sequence",
        "status",
        "call_id",
        "item_id",
        "tool_use_id",
        "tool_call_id",
        "system_fingerprint",
        "service_tier",
        "signature",
        "encrypted_content",
        "previous_response_id",
        "file_id",
        "container_id",
        "media_type",
        "page_age",
        "encoding_format",
        "embedding",
        "bytes",
        "usage",
        "index",
        "sequence_number",
        "output_index",
        "content_index",
        "summary_index",
        "annotation_index",
    }
)

#: Keys whose string value is JSON written by the model (decoded first).
JSON_FIELDS: Final = frozenset({"arguments", "partial_json"})

#: Block types whose payload is an opaque provider blob (no text).
_OPAQUE_TYPES: Final = frozenset({"redacted_thinking"})

#: Fields of a Responses API ``response`` object that echo the request.
_RESPONSE_ECHO: Final = frozenset(
    {
        "instructions",
        "tools",
        "tool_choice",
        "metadata",
        "text",
        "reasoning",
        "prompt",
        "truncation",
        "include",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "conversation",
    }
)


def is_token_list(value: list[Any]) -> bool:
    """True for a list of logprob entries (each a mapping with a ``token``)."""
    return bool(value) and all(
        isinstance(e, dict) and isinstance(e.get("token"), str) for e in value
    )


def check_tokens(entries: list[Any], enforce: Enforce) -> list[Any]:
    """Logprob entries checked as the text their tokens spell.

    The tokens are checked joined (a secret split over tokens is seen);
    alternative tokens one by one. When the pipeline changes the text the
    entries keep their numbers but lose their token texts and bytes.
    """
    joined = "".join(e["token"] for e in entries)
    if enforce(joined) != joined:
        return [{**e, "token": "", "bytes": [], "top_logprobs": []} for e in entries]
    out = []
    for entry in entries:
        tops = entry.get("top_logprobs")
        if isinstance(tops, list) and tops:
            entry = {**entry, "top_logprobs": _check_alternatives(tops, enforce)}
        out.append(entry)
    return out


def _check_alternatives(tops: list[Any], enforce: Enforce) -> list[Any]:
    out = []
    for top in tops:
        if isinstance(top, dict) and isinstance(top.get("token"), str):
            safe = enforce(top["token"])
            if safe != top["token"]:
                top = {**top, "token": safe, "bytes": list(safe.encode())}
        else:
            top = walk(top, enforce)
        out.append(top)
    return out


#: A field that normally arrives whole, sent in pieces, is refused past this.
_MAX_WHOLE: Final = 1024

#: What :func:`loads` returns for a text that is not JSON.
NOT_JSON: Final = object()


def loads(text: str | bytes, **kw: Any) -> Any:
    """``json.loads``, or :data:`NOT_JSON`.

    The error is not kept: a decode error carries the whole text (``.doc``),
    and a block raised while handling it would chain it, secret included.
    """
    try:
        return json.loads(text, **kw)
    except PolicyError:
        raise
    except (ValueError, RecursionError):
        return NOT_JSON


def check_json_text(text: str, enforce: Enforce) -> str:
    """A JSON-valued field, checked as decoded; the text itself when not JSON.

    A key the model names twice is checked in every copy, and the text is
    then sent re-encoded with the copy a reader keeps (the last): the
    copies a decoder drops must not reach the caller unchecked in the text.
    """
    dropped: list[Any] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                dropped.append(out[key])
            out[key] = value
        return out

    doc = loads(text, object_pairs_hook=pairs)
    if doc is NOT_JSON:
        return enforce(text)
    safe = _walk_model_json(doc, enforce)
    for value in dropped:
        _walk_model_json(value, enforce)  # blocks if a dropped copy must
    if safe == doc and not dropped:
        return text
    return json.dumps(safe, ensure_ascii=False)


def _walk_model_json(value: Any, enforce: Enforce) -> Any:
    """JSON the model wrote: every string, keys and numbers included, is content."""
    if isinstance(value, str):
        return enforce(value)
    if isinstance(value, dict):
        return {enforce(k): _walk_model_json(v, enforce) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk_model_json(v, enforce) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # a number spells digits a registered secret or PII may be made of
        text = json.dumps(value)
        safe = enforce(text)
        return value if safe == text else safe
    return value


def _looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in {"{", "["}


def check_text(text: str, enforce: Enforce) -> str:
    """A content string; JSON content (structured outputs, which SDK helpers
    such as ``parse()`` decode for the caller) is checked decoded as well."""
    safe = enforce(text)
    if _looks_like_json(safe):
        return check_json_text(safe, enforce)
    return safe


def walk(value: Any, enforce: Enforce, key: str | None = None) -> Any:
    """``value`` with every content string passed through ``enforce``."""
    if isinstance(value, str):
        if key in STRUCTURAL:
            return value
        if key in JSON_FIELDS:
            return check_json_text(value, enforce)
        return check_text(value, enforce)
    if isinstance(value, dict):
        if value.get("type") in _OPAQUE_TYPES:
            return value
        skip = _RESPONSE_ECHO if value.get("object") == "response" else frozenset()
        out = {}
        for k, v in value.items():
            if k in skip or k in STRUCTURAL:
                out[k] = v
            elif k == "input" and isinstance(v, (dict, list)):
                out[k] = _walk_model_json(v, enforce)  # a tool's input object
            else:
                out[k] = walk(v, enforce, k)
        return out
    if isinstance(value, list):
        if is_token_list(value):
            return check_tokens(value, enforce)
        return _joined_parts([walk(v, enforce, key) for v in value], enforce)
    return value


#: Content-part types whose texts an SDK joins for the caller
#: (``get_final_text()``, ``output_text``, LangChain message content).
_TEXT_PARTS: Final = frozenset({"text", "output_text"})


def _joined_parts(items: list[Any], enforce: Enforce) -> list[Any]:
    """Text parts checked as the text the caller reads: joined.

    A secret split over two text blocks passes a check of each block; when
    the joined text is not safe, the safe joined text goes in the first
    part and the others are emptied (or ``OutputBlocked`` is raised).
    """
    at = [
        i
        for i, item in enumerate(items)
        if isinstance(item, dict)
        and item.get("type") in _TEXT_PARTS
        and isinstance(item.get("text"), str)
    ]
    if len(at) < 2:
        return items
    joined = "".join(items[i]["text"] for i in at)
    safe = enforce(joined)
    if safe == joined:
        return items
    out = list(items)
    for n, i in enumerate(at):
        out[i] = {**items[i], "text": safe if n == 0 else ""}
    return out


class FieldStreams:
    """Per-field-path stream state of one streamed answer.

    ``feed_text`` passes a text delta through the field's StreamGuard and
    returns what is safe to emit now; ``feed_json`` buffers a JSON-valued
    field (emitted whole when it closes, after it is decoded and checked);
    ``feed_tokens`` holds logprob entries until their field closes.
    """

    def __init__(self, new_guard: Callable[[], StreamGuard], enforce: Enforce):
        self._new = new_guard
        self.enforce = enforce
        self._text: dict[Hashable, StreamGuard] = {}
        self._json: dict[Hashable, list[str]] = {}
        self._tokens: dict[Hashable, list[Any]] = {}
        self._whole: dict[Hashable, tuple[str, str]] = {}

    def feed_whole(self, key: Hashable, chunk: str) -> str:
        """A field that normally arrives whole (a tool name, a URL), checked
        as the text an SDK accumulates: every piece of it so far, joined."""
        raw, sent = self._whole.get(key, ("", ""))
        if raw and len(raw) + len(chunk) > _MAX_WHOLE:
            # rescanning the whole field at each piece must stay bounded
            raise PolicyError(
                "a streamed field that arrives whole (a tool name, a URL, a "
                "title) came in pieces longer than 1 KiB; refused unchecked"
            )
        raw += chunk
        safe = self.enforce(raw)
        out = safe[len(sent) :] if safe.startswith(sent) else ""
        self._whole[key] = (raw, sent + out)
        return out

    def feed_text(self, key: Hashable, chunk: str) -> str:
        sg = self._text.get(key)
        if sg is None:
            sg = self._text[key] = self._new()
        return sg.feed(chunk)

    def feed_json(self, key: Hashable, chunk: str) -> None:
        self._json.setdefault(key, []).append(chunk)

    def feed_tokens(self, key: Hashable, entries: list[Any]) -> None:
        self._tokens.setdefault(key, []).extend(entries)

    def open_keys(self) -> list[Hashable]:
        """Every key with an open field, in the order first seen."""
        seen = dict.fromkeys([*self._text, *self._json, *self._tokens])
        return list(seen)

    def close(self, key: Hashable) -> tuple[str | None, list[Any] | None]:
        """Close a field: (the rest of its text, its checked logprob entries)."""
        rest: str | None = None
        sg = self._text.pop(key, None)
        if sg is not None:
            rest = sg.close()
        parts = self._json.pop(key, None)
        if parts is not None:
            rest = check_json_text("".join(parts), self.enforce)
        entries = self._tokens.pop(key, None)
        tokens = check_tokens(entries, self.enforce) if entries else None
        return rest, tokens
