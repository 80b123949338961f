"""Red team: the Bedrock guard at the wire and in its errors (issue #12 B).

* A ``before-send`` hook that runs after the guard's (registered on the
  bare ``before-send`` event, which botocore runs after the service's, or
  registered last after guarding) changed the request the guard had
  already judged: the request now is judged again as it leaves, in the
  client's HTTP session.
* An endpoint URL on which parsers disagree (``http://a:1\\@b``: urlsplit
  reads host ``b``, urllib3 connects to ``a``) names no region.
* Answers the guard cannot read (not UTF-8, gzip-encoded, not JSON) are
  refused, and neither the refusal nor any exception chained to it carries
  the unchecked body (``UnicodeDecodeError.object``, ``JSONDecodeError.doc``).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aiinvariants import Guard, ModelDenied, OutputBlocked, Policy, RegionDenied
from aiinvariants.llm import guard_llm
from bedrock_support import (
    BedrockServer,
    _bedrock_caller,
    _close_bedrock_clients,
    _header,
    bedrock_client,
    bedrock_server,
    frame,
    other_server,
)

__all__ = [
    "_bedrock_caller",
    "_close_bedrock_clients",
    "bedrock_server",
    "other_server",
]

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
SECRET = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"


def guard_for(eu: str, us: str | None = None) -> Guard:
    declared = {eu: "eu-central-1"}
    if us is not None:
        declared[us] = "us-east-1"
    return Guard(
        Policy(
            models={"allow": ["*anthropic.claude-*"], "deny": ["deepseek*"]},
            regions={"allow": ["eu-*"], "declared": declared},
        )
    )


def msg(text: str = "hi") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


# -- the request changed after the guard judged it ----------------------------------


def _on_bare_event(raw: Any, handler: Callable[..., None]) -> None:
    raw.meta.events.register("before-send", handler)


def _registered_last(raw: Any, handler: Callable[..., None]) -> None:
    raw.meta.events.register_last("before-send.bedrock-runtime", handler)


@pytest.mark.parametrize("register", [_on_bare_event, _registered_last])
def test_request_redirected_after_the_guards_before_send(
    bedrock_server: BedrockServer, other_server: BedrockServer, register: Any
) -> None:
    raw = bedrock_client(bedrock_server.url)
    client = guard_llm(guard_for(bedrock_server.url, other_server.url), raw)

    def move(request: Any, **_: Any) -> None:
        request.url = request.url.replace(bedrock_server.url, other_server.url)

    register(raw, move)
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "region_denied"
    assert other_server.requests == []


@pytest.mark.parametrize("register", [_on_bare_event, _registered_last])
def test_model_swapped_after_the_guards_before_send(
    bedrock_server: BedrockServer, register: Any
) -> None:
    raw = bedrock_client(bedrock_server.url)
    client = guard_llm(guard_for(bedrock_server.url), raw)

    def swap(request: Any, **_: Any) -> None:
        request.url = request.url.replace(
            CLAUDE.replace(":", "%3A"), "deepseek.r1-v1%3A0"
        )

    register(raw, swap)
    before = len(bedrock_server.requests)
    with pytest.raises(ModelDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "model_denied"
    assert len(bedrock_server.requests) == before


def test_hooks_that_leave_the_request_alone_still_work(
    bedrock_server: BedrockServer,
) -> None:
    raw = bedrock_client(bedrock_server.url)
    client = guard_llm(guard_for(bedrock_server.url), raw)
    seen: list[str] = []
    raw.meta.events.register("before-send", lambda request, **_: seen.append("x"))
    assert client.converse(modelId=CLAUDE, messages=msg())["output"]
    assert list(client.converse_stream(modelId=CLAUDE, messages=msg())["stream"])
    assert seen == ["x", "x"]


# -- URLs parsers disagree on ---------------------------------------------------------


def test_backslash_endpoint_names_no_region(
    bedrock_server: BedrockServer, other_server: BedrockServer
) -> None:
    # urlsplit: host is the EU-declared server; urllib3 connects to the US one.
    url = other_server.url + "\\@" + bedrock_server.url.split("//", 1)[1]
    client = guard_llm(
        guard_for(bedrock_server.url, other_server.url), bedrock_client(url)
    )
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    # The one URL rule refuses it before its region is read.
    assert info.value.code == "insecure_url"
    assert other_server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1\\@bedrock-runtime.eu-central-1.amazonaws.com/",
        "http://evil.test\\.bedrock-runtime.eu-central-1.amazonaws.com/",
        "http://x@bedrock-runtime.eu-central-1.amazonaws.com/",
        "http://bedrock-runtime.eu-central-1.amazonaws.com\t/",
        "http://bedrock-runtime.eu-central-1.amazonaws.com:99999/",
    ],
)
def test_ambiguous_urls_name_no_region(url: str) -> None:
    from aiinvariants.llm._regions import bedrock_placement, region_from_url

    declared = {"http://127.0.0.1:1": "eu-central-1"}
    assert bedrock_placement(url, declared).home is None
    assert region_from_url(url, declared).home is None


# -- answers the guard cannot read --------------------------------------------------


class RawServer:
    """A loopback server answering every POST with ``reply``."""

    def __init__(self) -> None:
        self.reply: tuple[int, dict[str, str], bytes] = (200, {}, b"")
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                status, headers, body = state.reply
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def raw_frame(event_type: str, payload: bytes) -> bytes:
    """An event-stream message with any payload bytes."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


def _carries_secret(value: Any, seen: set[int] | None = None) -> bool:
    """True when the secret is anywhere in an exception, its chain or args."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, str):
        return SECRET[:16] in value
    if isinstance(value, (bytes, bytearray)):
        return any(
            SECRET[:16].encode(enc) in value for enc in ("utf-8", "utf-16-le")
        ) or value.startswith(b"\x1f\x8b")  # gzip: the secret, compressed
    if isinstance(value, BaseException):
        parts = [value.__context__, value.__cause__, *value.args, repr(value)]
        parts += list(vars(value).values())
        parts += [getattr(value, a, None) for a in ("object", "doc")]
        return any(_carries_secret(p, seen) for p in parts if p is not None)
    if isinstance(value, dict):
        return any(_carries_secret(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_carries_secret(v, seen) for v in value)
    return False


_CONVERSE = json.dumps(
    {
        "output": {
            "message": {"role": "assistant", "content": [{"text": "x " + SECRET}]}
        },
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
).encode()
_STREAM = {"content-type": "application/vnd.amazon.eventstream"}
_JSON = {"content-type": "application/json"}
_TEXT = {"content-type": "text/plain"}
_OPENAI_TOOL = {
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "not json " + SECRET},
                    }
                ],
            },
            "finish_reason": "stop",
        }
    ]
}

UNREADABLE: dict[str, tuple[str, tuple[int, dict[str, str], bytes], str]] = {
    "converse, a byte that is not UTF-8": (
        "converse",
        (200, _JSON, _CONVERSE[:-1] + b" \xff}"),
        "unreadable_output",
    ),
    "converse, gzip-encoded": (
        "converse",
        (200, {**_JSON, "content-encoding": "gzip"}, gzip.compress(_CONVERSE)),
        "unreadable_output",
    ),
    "converse error, not UTF-8": (
        "converse",
        (
            400,
            {**_JSON, "x-amzn-errortype": "ValidationException"},
            json.dumps({"message": SECRET}).encode() + b"\xff",
        ),
        "unreadable_output",
    ),
    "converse_stream, an event that is not UTF-8": (
        "converse_stream",
        (
            200,
            _STREAM,
            frame("messageStart", {"role": "assistant"})
            + raw_frame(
                "contentBlockDelta",
                json.dumps({"contentBlockIndex": 0, "delta": {"text": SECRET}}).encode()
                + b"\xff",
            ),
        ),
        "unreadable_output",
    ),
    "invoke stream, a chunk that is not JSON": (
        "invoke_stream",
        (
            200,
            _STREAM,
            frame(
                "chunk",
                {"bytes": base64.b64encode(("oops " + SECRET).encode()).decode()},
            ),
        ),
        "unreadable_output",
    ),
    "invoke, tool arguments that are not JSON": (
        "invoke",
        (200, _JSON, json.dumps(_OPENAI_TOOL).encode()),
        "output_blocked",
    ),
    "invoke, UTF-16 text with a byte-order mark": (
        "invoke",
        (200, _TEXT, b"\xff\xfe" + ("hello " + SECRET).encode("utf-16-le")),
        "unreadable_output",
    ),
    "invoke, UTF-16 text without a byte-order mark": (
        "invoke",
        (200, _TEXT, ("hello " + SECRET).encode("utf-16-le")),
        "unreadable_output",
    ),
    "invoke, Latin-1 text": (
        "invoke",
        (200, _TEXT, ("h\xe9llo " + SECRET).encode("latin-1")),
        "unreadable_output",
    ),
    "invoke error, not UTF-8": (
        "invoke",
        (
            400,
            {**_JSON, "x-amzn-errortype": "ValidationException"},
            json.dumps({"message": SECRET}).encode() + b"\xff",
        ),
        "unreadable_output",
    ),
}


def _call(client: Any, how: str) -> Any:
    if how == "converse":
        return client.converse(modelId=CLAUDE, messages=msg())
    if how == "converse_stream":
        return list(client.converse_stream(modelId=CLAUDE, messages=msg())["stream"])
    if how == "invoke":
        return client.invoke_model(modelId=CLAUDE, body=b"{}")["body"].read()
    return list(
        client.invoke_model_with_response_stream(modelId=CLAUDE, body=b"{}")["body"]
    )


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_answers_are_refused_without_their_body(
    raw_server: RawServer, case: str
) -> None:
    how, reply, code = UNREADABLE[case]
    raw_server.reply = reply
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    with pytest.raises(OutputBlocked) as info:
        _call(client, how)
    assert info.value.code == code
    assert not _carries_secret(info.value)


# -- an ARN's region, read in the canonical form its model is read in ---------------

_US_ARN = "arn:aws:bedrock:us-east-1::foundation-model/" + CLAUDE


@pytest.mark.parametrize(
    "model",
    [
        "\u200b" + _US_ARN,  # zero-width space before "arn"
        "\uff41" + _US_ARN[1:],  # fullwidth "a"
        _US_ARN.replace(":", "%3A").replace("/", "%2F"),  # percent-encoded
        _US_ARN.replace(":", "&#58;"),  # HTML references
    ],
)
def test_disguised_arn_keeps_its_region(
    bedrock_server: BedrockServer, model: str
) -> None:
    client = guard_llm(
        guard_for(bedrock_server.url), bedrock_client(bedrock_server.url)
    )
    before = len(bedrock_server.requests)
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=model, messages=msg())
    assert info.value.code == "cross_region_profile"
    assert len(bedrock_server.requests) == before


# -- stream chunks that are not JSON objects ---------------------------------------


def _chunk(doc: Any) -> bytes:
    raw = base64.b64encode(json.dumps(doc).encode()).decode()
    return frame("chunk", {"bytes": raw})


@pytest.mark.parametrize(
    "docs",
    [
        ["x " + SECRET],  # a bare JSON string
        [["x " + SECRET]],  # a JSON list
        [SECRET[:14], SECRET[14:]],  # split over two string chunks
        [[SECRET[:14]], [SECRET[14:]]],  # split over two list chunks
        [SECRET[:14], {"generation": "x"}, SECRET[14:]],
    ],
)
def test_invoke_stream_chunks_that_are_not_objects_are_content(
    raw_server: RawServer, docs: list[Any]
) -> None:
    raw_server.reply = (200, _STREAM, b"".join(_chunk(d) for d in docs))
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    got: list[bytes] = []

    def read() -> None:
        stream = client.invoke_model_with_response_stream(modelId=CLAUDE, body=b"{}")
        got.extend(event["chunk"]["bytes"] for event in stream["body"])

    with pytest.raises(OutputBlocked) as info:
        read()
    assert info.value.code == "output_blocked"
    assert SECRET.encode() not in b"".join(got)


def test_invoke_stream_string_chunks_keep_their_shape(raw_server: RawServer) -> None:
    raw_server.reply = (200, _STREAM, _chunk("hello ") + _chunk("world"))
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    events = client.invoke_model_with_response_stream(modelId=CLAUDE, body=b"{}")
    docs = [json.loads(e["chunk"]["bytes"]) for e in events["body"]]
    assert all(isinstance(d, str) for d in docs)
    assert "".join(docs) == "hello world"


def test_invoke_body_with_a_duplicate_key_reaches_the_caller_as_checked(
    raw_server: RawServer,
) -> None:
    # json.loads keeps the last "generation"; the raw bytes still carry the
    # first for any reader that keeps it (or just prints the body).
    body = b'{"generation": "' + SECRET.encode() + b'", "generation": "fine"}'
    raw_server.reply = (200, _JSON, body)
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    got = client.invoke_model(modelId=CLAUDE, body=b"{}")["body"].read()
    assert SECRET.encode() not in got
    assert json.loads(got) == {"generation": "fine"}


# -- a finding split between plain and cited answer text --------------------------


def test_secret_split_between_text_and_cited_text_is_blocked(
    raw_server: RawServer,
) -> None:
    citation = {
        "title": "manual",
        "sourceContent": [{"text": "x"}],
        "location": {"documentChar": {"documentIndex": 0, "start": 0, "end": 1}},
    }
    content = [
        {"text": "According to the manual, the key is " + SECRET[:16]},
        {
            "citationsContent": {
                "content": [{"text": SECRET[16:]}],
                "citations": [citation],
            }
        },
    ]
    body = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
    raw_server.reply = (200, _JSON, json.dumps(body).encode())
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    with pytest.raises(OutputBlocked) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "output_blocked"


# -- a decoded document in a stream event ---------------------------------------------


def _stream_with_extra(extra: dict[str, Any]) -> bytes:
    return b"".join(
        [
            frame("messageStart", {"role": "assistant"}),
            frame(
                "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}
            ),
            frame("contentBlockStop", {"contentBlockIndex": 0}),
            frame(
                "messageStop",
                {"stopReason": "end_turn", "additionalModelResponseFields": extra},
            ),
        ]
    )


@pytest.mark.parametrize("extra", [{SECRET: "v"}, {"note": {SECRET: ["v"]}}])
def test_streamed_document_keys_are_checked_as_when_not_streamed(
    raw_server: RawServer, extra: dict[str, Any]
) -> None:
    raw_server.reply = (200, _STREAM, _stream_with_extra(extra))
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    with pytest.raises(OutputBlocked) as info:
        list(client.converse_stream(modelId=CLAUDE, messages=msg())["stream"])
    assert info.value.code == "output_blocked"


def test_a_streamed_document_stays_one_event(raw_server: RawServer) -> None:
    raw_server.reply = (200, _STREAM, _stream_with_extra({"note": "fine"}))
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    events = list(client.converse_stream(modelId=CLAUDE, messages=msg())["stream"])
    stops = [e["messageStop"] for e in events if "messageStop" in e]
    assert stops == [
        {"stopReason": "end_turn", "additionalModelResponseFields": {"note": "fine"}}
    ]


# -- one gateway host, two declared paths ----------------------------------------------


def test_declared_paths_on_one_host_are_two_endpoints(
    bedrock_server: BedrockServer,
) -> None:
    # A gateway serving /eu and /us from one host: the /us endpoint was
    # judged by the first declared key of that host (EU).
    guard = Guard(
        Policy(
            models={"allow": ["*anthropic.claude-*"]},
            regions={
                "allow": ["eu-*"],
                "declared": {
                    bedrock_server.url + "/eu": "eu-central-1",
                    bedrock_server.url + "/us": "us-east-1",
                },
            },
        )
    )
    client = guard_llm(guard, bedrock_client(bedrock_server.url + "/us"))
    before = len(bedrock_server.requests)
    with pytest.raises(RegionDenied) as info:
        client.converse(modelId=CLAUDE, messages=msg())
    assert info.value.code == "region_denied"
    assert len(bedrock_server.requests) == before


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("http://gw.test/us/model/x/converse", "us-east-1"),
        ("http://gw.test/eu/model/x/converse", "eu-central-1"),
        ("http://gw.test/eu", "eu-central-1"),
        ("http://gw.test/eu/../us/model/x/converse", None),
        ("http://gw.test/eu/%2e%2e/us/model/x/converse", None),
        ("http://gw.test/euro/model/x/converse", None),
        ("http://gw.test/model/x/converse", None),
        ("http://other.test/any/path", "eu-west-1"),
    ],
)
def test_declared_keys_with_paths(url: str, region: str | None) -> None:
    from aiinvariants.llm._regions import declared_region

    declared = {
        "http://gw.test/eu": "eu-central-1",
        "http://gw.test/us/": "us-east-1",
        "http://other.test": "eu-west-1",
    }
    assert declared_region(url, declared) == region


# -- a key of the answer ------------------------------------------------------------


@pytest.mark.parametrize(
    "doc", [{"results": {SECRET: "x"}}, {SECRET: 1}, [{"out": {SECRET: []}}]]
)
def test_a_key_carrying_a_secret_is_blocked(raw_server: RawServer, doc: Any) -> None:
    raw_server.reply = (200, _JSON, json.dumps(doc).encode())
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    with pytest.raises(OutputBlocked) as info:
        client.invoke_model(modelId=CLAUDE, body=b"{}")
    assert info.value.code == "output_blocked"


@pytest.mark.parametrize("doc", [{SECRET: 1}, {"outputs": [{SECRET: "x"}]}])
def test_a_streamed_key_carrying_a_secret_is_blocked(
    raw_server: RawServer, doc: Any
) -> None:
    raw_server.reply = (200, _STREAM, _chunk(doc))
    client = guard_llm(guard_for(raw_server.url), bedrock_client(raw_server.url))
    stream = client.invoke_model_with_response_stream(modelId=CLAUDE, body=b"{}")
    with pytest.raises(OutputBlocked) as info:
        list(stream["body"])
    assert info.value.code == "output_blocked"
