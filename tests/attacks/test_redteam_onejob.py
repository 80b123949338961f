"""Red team of #18 parts A and C: one JSON parser, one bearer parser, the
deprecated aliases and the moved module paths.

Each test asserts the secure outcome; it failed before the fix it names.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import subprocess
import sys
import warnings
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from aiinvariants.integrations.asgi import BearerAuthMiddleware
from auth_support import mint, verifier
from llm_support import LLMServer, closing, llm_server

__all__ = ["llm_server"]

GOOD = mint()
OTHER = mint(sub="mallory")
H = b"authorization"
BOUNDARY = "rtboundary"


def _multipart(name_header: str, value: str) -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; {name_header}\r\n\r\n"
        f"{value}\r\n--{BOUNDARY}--\r\n"
    ).encode()


# -- RFC 6750 section 2.2 by another form encoding: multipart/form-data -----------
#
# FastAPI's Form() and Starlette's request.form() read multipart bodies exactly
# like url-encoded ones: an access_token field there is the same second,
# unverified identity the app might read.

MULTIPART_BODIES = {
    "plain name": 'name="access_token"',
    "capitals": 'name="ACCESS_TOKEN"',
    "unquoted name": "name=access_token",
}


async def _asgi_post(app: Any, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    statuses: list[int] = []
    parts = [
        {"type": "http.request", "body": body[:5], "more_body": True},
        {"type": "http.request", "body": body[5:], "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/notes",
        "query_string": b"",
        "headers": [(b"host", b"api.example.test"), *headers],
    }
    await app(scope, receive, send)
    return statuses[0]


@pytest.mark.parametrize("case", sorted(MULTIPART_BODIES))
def test_fastapi_refuses_a_multipart_form_token(case: str) -> None:
    from fastapi_support import build

    state = build()
    body = _multipart(MULTIPART_BODIES[case], OTHER)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=state.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.example.test"
        ) as client:
            return await client.post(
                "/form",
                content=body,
                headers={
                    "authorization": f"Bearer {GOOD}",
                    "content-type": f"multipart/form-data; boundary={BOUNDARY}",
                },
            )

    response = asyncio.run(go())
    assert response.status_code == 400
    assert response.json()["code"] == "token_in_body"
    assert state.seen == []


@pytest.mark.parametrize("case", sorted(MULTIPART_BODIES))
def test_the_asgi_middleware_refuses_a_multipart_form_token(case: str) -> None:
    reached: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BearerAuthMiddleware(inner, verifier=verifier())
    headers = [
        (H, b"Bearer " + GOOD.encode()),
        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
    ]
    status = asyncio.run(
        _asgi_post(app, headers, _multipart(MULTIPART_BODIES[case], OTHER))
    )
    assert status == 400
    assert reached == []


# -- moved module paths ---------------------------------------------------------


def test_an_old_path_import_leaves_the_new_modules_spec_alone() -> None:
    import aiinvariants._guard as new

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = importlib.import_module("aiinvariants.guard")
    assert old is new
    assert new.__spec__ is not None
    assert new.__spec__.name == "aiinvariants._guard"
    spec = importlib.util.find_spec("aiinvariants._guard")
    assert spec is not None
    assert spec.name == "aiinvariants._guard"


def test_an_old_path_imported_first_keeps_the_real_spec() -> None:
    code = (
        "import warnings; warnings.simplefilter('ignore');"
        "import importlib.util, aiinvariants.llm.classifiers as old;"
        "import aiinvariants.filters.classifiers as new;"
        "assert old is new, 'two modules';"
        "assert new.__spec__.name == 'aiinvariants.filters.classifiers', new.__spec__;"
        "assert new.__spec__.origin.endswith('classifiers.py');"
        "assert importlib.util.find_spec('aiinvariants.filters.classifiers').origin"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_python_dash_m_an_old_path_runs_the_new_module() -> None:
    # `python -m aiinvariants.cli verify ...` in a CI gate crashed with an
    # AttributeError (the alias loader had no get_code).
    done = subprocess.run(
        [sys.executable, "-m", "aiinvariants.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert "DeprecationWarning" not in done.stdout


def test_a_large_multipart_upload_is_served_and_a_late_token_part_never_read() -> None:
    """A file upload past the pre-check's read is still served; a part named
    access_token after it ends the body before the app's form holds it."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    seen: list[list[str]] = []

    async def upload(request: Request) -> PlainTextResponse:
        async with request.form() as form:
            seen.append(sorted(form.keys()))
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/notes", upload, methods=["POST"])])
    app = BearerAuthMiddleware(inner, verifier=verifier())
    big = "x" * (5 * 1024 * 1024)
    file_part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file";'
        f' filename="a.txt"\r\nContent-Type: text/plain\r\n\r\n{big}\r\n'
    )
    token_part = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data;"
        f' name="access_token"\r\n\r\n{OTHER}\r\n'
    )
    end = f"--{BOUNDARY}--\r\n"
    headers = {
        "authorization": f"Bearer {GOOD}",
        "content-type": f"multipart/form-data; boundary={BOUNDARY}",
    }

    async def post(body: str) -> int:
        chunks = [body.encode()[i : i + 65536] for i in range(0, len(body), 65536)]

        async def stream() -> Any:
            for chunk in chunks:
                yield chunk

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://api.example.test"
        ) as client:
            try:
                response = await client.post(
                    "/notes", content=stream(), headers=headers
                )
            except Exception:  # the app saw a disconnect: no answer at all
                return 0
            return response.status_code

    assert asyncio.run(post(file_part + end)) == 200
    assert seen == [["file"]]
    seen.clear()
    assert asyncio.run(post(file_part + token_part + end)) != 200
    assert seen == []


@pytest.mark.parametrize(
    "header",
    [
        'name="access_token"',
        "name*=utf-8''access%5Ftoken",
        'filename="a.txt"; NAME="Access_Token"',
        "x" * 3000 + '; name="access_token"',
    ],
)
def test_the_multipart_scan_finds_a_token_part_however_the_body_is_cut(
    header: str,
) -> None:
    from aiinvariants.auth._bearer import MultipartNames

    body = _multipart(header, "v")
    for size in (1, 2, 7, 64, 1000, len(body)):
        names = MultipartNames()
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert any(names.feed(chunk) for chunk in chunks), size
    benign = _multipart('name="note"', "access_token")
    assert not MultipartNames().feed(benign)


# -- JSON read twice: a tool result's label in JSON text --------------------------
#
# The ceiling read a JSON result with json.loads (the last copy of a key
# wins); the model, a UI or another parser may read the first. A label key
# named twice is an ambiguous label: above every level.

DUPLICATE_LABELS = {
    "plain": '{"classification": "confidential", "classification": "public",'
    ' "text": "Q3 salaries"}',
    "escaped key": '{"classification": "confidential", "classific\\u0061tion":'
    ' "public", "text": "Q3 salaries"}',
    "nested": '{"results": [{"classification": "confidential",'
    ' "classification": "public"}]}',
}


@pytest.mark.parametrize("case", sorted(DUPLICATE_LABELS))
def test_a_tool_result_naming_its_label_twice_is_withheld(case: str) -> None:
    from aiinvariants import AccessDenied, Guard, Policy, Principal, acting_as

    guard = Guard(Policy(exposure="public"))
    text = DUPLICATE_LABELS[case]
    tool = guard.tool(
        name=f"search_{case.replace(' ', '_')}", data="public", exposure="public"
    )(lambda: text)
    cleared = Principal(subject="ceo", authenticated=True, clearance="restricted")
    with acting_as(cleared), pytest.raises(AccessDenied) as caught:
        tool()
    assert caught.value.code == "mislabelled_source"


@pytest.mark.parametrize(
    "text",
    [
        '\ufeff{"classification": "confidential", "text": "Q3 salaries"}',
        b'\xef\xbb\xbf{"classification": "confidential", "text": "Q3 salaries"}',
        '{"classification": "confidential", "pad": "' + "x" * (1 << 20) + '"}',
    ],
    ids=["bom text", "bom bytes", "over the JSON read bound"],
)
def test_a_labelled_json_result_the_reader_skipped_is_withheld(text: Any) -> None:
    """A byte order mark before the JSON (any reader skips it) or a text past
    the bound kept the ceiling from reading its label at all."""
    from aiinvariants import AccessDenied, Guard, Policy, Principal, acting_as

    guard = Guard(Policy(exposure="public"))
    tool = guard.tool(name="search_text", data="public", exposure="public")(
        lambda: text
    )
    cleared = Principal(subject="ceo", authenticated=True, clearance="restricted")
    with acting_as(cleared), pytest.raises(AccessDenied) as caught:
        tool()
    assert caught.value.code == "mislabelled_source"


@pytest.mark.parametrize(
    "order", ["urlencoded first", "multipart first"], ids=["ue-first", "mp-first"]
)
def test_two_content_types_are_each_checked(order: str) -> None:
    """Starlette reads the first Content-Type, another framework the last:
    the body is checked under both."""
    reached: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BearerAuthMiddleware(inner, verifier=verifier())
    types = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
    ]
    if order == "multipart first":
        types.reverse()
    headers = [(H, b"Bearer " + GOOD.encode()), *types]
    status = asyncio.run(
        _asgi_post(app, headers, b"note=hi&access_token=" + OTHER.encode())
    )
    assert status == 400
    assert reached == []


def test_a_stale_file_at_an_old_path_never_makes_a_second_module() -> None:
    """An upgrade that leaves the old file behind (pip --target, a layer
    copied over the old one) had the old path load that stale copy: a second
    principal ContextVar, a second guard registry. The old path is always
    the new module."""
    code = (
        "import os, tempfile, warnings; warnings.simplefilter('ignore');"
        "import aiinvariants, aiinvariants._principal as new;"
        "d = tempfile.mkdtemp();"
        "open(os.path.join(d, 'principal.py'), 'w').write('STALE = True');"
        "aiinvariants.__path__.append(d);"
        "import aiinvariants.principal as old;"
        "assert old is new, 'a second principal module';"
        "assert not hasattr(old, 'STALE')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-800:]


# -- JSON keys equal but for case: Go's encoding/json (Ollama, many gateways)
# matches struct fields case-insensitively (simple folding: U+017F is "s", the
# Kelvin sign is "k") and keeps the last; the guard read the exact key. -----------

CASE_TWINS = {
    "model in capitals": {"Model": "o3-pro"},
    "model all caps": {"MODEL": "o3-pro"},
    "long s": {"store": False, "\u017ftore": True},
    "Kelvin sign": {"\u212aeep_alive": "1h", "keep_alive": "0"},
}


def test_the_strict_parser_refuses_keys_equal_but_for_case() -> None:
    from aiinvariants._internal import strict_json

    for text in (
        b'{"model": "a", "Model": "b"}',
        b'{"a": [{"stream": false, "\\u017ftream": true}]}',
        b'{"k": 1, "\\u212a": 2}',
    ):
        with pytest.raises(strict_json.StrictJSONError) as info:
            strict_json.loads(text)
        assert info.value.problem == "duplicate_key"
    assert strict_json.loads(b'{"model": "a", "models": "b"}') == {
        "model": "a",
        "models": "b",
    }


@pytest.mark.parametrize("case", sorted(CASE_TWINS))
def test_an_llm_body_naming_a_key_twice_but_for_case_is_not_sent(
    llm_server: LLMServer, case: str
) -> None:
    import openai

    from aiinvariants import Guard, Policy, PolicyError, Principal, acting_as
    from aiinvariants.llm import guard_llm

    policy = Policy(
        models={"allow": ["gpt-4.1*"]},
        regions={"allow": ["eu-*"], "declared": {llm_server.url: "eu-west-1"}},
    )
    raw = closing(openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1"))
    client = guard_llm(Guard(policy), raw)
    before = len(llm_server.requests)
    alice = Principal(subject="alice", authenticated=True)
    with acting_as(alice), pytest.raises(PolicyError) as info:
        client.chat.completions.create(
            model="gpt-4.1",
            messages=[{"role": "user", "content": "hi"}],
            extra_body=CASE_TWINS[case],
        )
    assert len(llm_server.requests) == before
    assert info.value.__cause__ is None


@settings(max_examples=80, deadline=None)
@given(key=st.text(min_size=1, max_size=6))
def test_property_a_key_and_its_other_case_are_one_key(key: str) -> None:
    from aiinvariants._internal import strict_json

    twins = {key.upper(), key.lower(), key.swapcase(), key.casefold()} - {key}
    for twin in twins:
        text = f"{{{json.dumps(key)}: 1, {json.dumps(twin)}: 2}}"
        if twin.casefold() != key.casefold():
            continue
        with pytest.raises(strict_json.StrictJSONError) as info:
            strict_json.loads(text)
        assert info.value.problem == "duplicate_key"


# -- aliases: a value read by its truth ------------------------------------------


@pytest.mark.parametrize("name", ["allow_anonymous", "accept_anonymous"])
@pytest.mark.parametrize("value", ["false", "0", 0.0, [False]])
def test_allow_anonymous_takes_a_bool_only(name: str, value: Any) -> None:
    """``allow_anonymous="false"`` (a setting read from the environment)
    was True by its truth value: every anonymous caller let in."""
    from aiinvariants import Guard, Policy, PolicyError
    from aiinvariants.integrations.fastmcp import FastMCPGuard
    from aiinvariants.integrations.mcp import MCPGuard

    for cls in (MCPGuard, FastMCPGuard):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(PolicyError):
                cls(Guard(Policy()), **{name: value})
    if name == "allow_anonymous":

        async def app(scope: Any, receive: Any, send: Any) -> None:
            raise AssertionError("never built")

        with pytest.raises(PolicyError):
            BearerAuthMiddleware(app, verifier=verifier(), allow_anonymous=value)


@pytest.mark.parametrize(
    ("charset", "encoding"),
    [
        ("utf-16", "utf-16-le"),
        ("utf-16-be", "utf-16-be"),
        ("utf-32", "utf-32-le"),
        ("cp500", "cp500"),
        ("utf-7", "utf-7"),
    ],
)
def test_a_token_part_named_in_the_declared_charset_is_refused(
    charset: str, encoding: str
) -> None:
    """Starlette decodes part names with the Content-Type's charset: the
    name ``access_token`` in UTF-16 or EBCDIC is the same field to the app."""
    reached: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BearerAuthMiddleware(inner, verifier=verifier())
    name = "access_token".encode(encoding)
    body = (
        b'--b\r\nContent-Disposition: form-data; name="'
        + name
        + b'"\r\n\r\n'
        + OTHER.encode()
        + b"\r\n--b--\r\n"
    )
    ctype = f"multipart/form-data; boundary=b; charset={charset}".encode()
    headers = [(H, b"Bearer " + GOOD.encode()), (b"content-type", ctype)]
    assert asyncio.run(_asgi_post(app, headers, body)) == 400
    assert reached == []


@pytest.mark.parametrize("charset", ["rot13", "hex", "no-such-codec", '"utf-8"'])
def test_a_charset_that_is_no_text_encoding_is_read_as_latin_1(charset: str) -> None:
    from aiinvariants.auth._bearer import MultipartNames

    assert MultipartNames([charset]).feed(_multipart('name="access_token"', "v"))
    assert not MultipartNames([charset]).feed(_multipart('name="note"', "v"))


@pytest.mark.parametrize(
    ("charset", "encoding"),
    [("utf-16", "utf-16-le"), ("utf-16-be", "utf-16-be"), ("cp500", "cp500")],
)
def test_a_url_encoded_token_in_the_declared_charset_is_refused(
    charset: str, encoding: str
) -> None:
    """Django decodes a url-encoded body with the Content-Type's charset:
    ``access_token=...`` in UTF-16 or EBCDIC is the same field to it."""
    from aiinvariants.auth._bearer import form_problem

    body = ("note=hi&access_token=" + OTHER).encode(encoding)
    assert form_problem(body, complete=True, charsets=[charset]) == "token_in_body"
    benign = "note=hi".encode(encoding)
    assert form_problem(benign, complete=True, charsets=[charset]) is None
    reached: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BearerAuthMiddleware(inner, verifier=verifier())
    ctype = f"application/x-www-form-urlencoded; charset={charset}".encode()
    headers = [(H, b"Bearer " + GOOD.encode()), (b"content-type", ctype)]
    assert asyncio.run(_asgi_post(app, headers, body)) == 400
    assert reached == []


@pytest.mark.parametrize("coding", [b"gzip", b"deflate", b"br", b"GZIP "])
def test_a_compressed_form_body_is_refused_unread(coding: bytes) -> None:
    """An app that decompresses request bodies (a decompression middleware
    behind this one) reads the access_token the gzip bytes hide."""
    import gzip

    reached: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BearerAuthMiddleware(inner, verifier=verifier())
    body = gzip.compress(b"note=hi&access_token=" + OTHER.encode())
    headers = [
        (H, b"Bearer " + GOOD.encode()),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-encoding", coding),
    ]
    assert asyncio.run(_asgi_post(app, headers, body)) == 400
    assert reached == []


@pytest.mark.parametrize(
    "text",
    [
        str([{"classification": "confidential", "text": "Q3 salaries"}]),
        '{"classification": "confidential", "text": "Q3 salaries",}',
        '[{"Classification": "confidential"}] and more',
    ],
    ids=["python repr", "trailing comma", "trailing text"],
)
def test_a_label_in_almost_json_is_withheld(text: str) -> None:
    """A tool returning ``str(rows)`` (single quotes) or JSON5 is no JSON to
    the strict parser, but the model reads its label all the same."""
    from aiinvariants import AccessDenied, Guard, Policy, Principal, acting_as

    guard = Guard(Policy(exposure="public"))
    tool = guard.tool(name="search_rows", data="public", exposure="public")(
        lambda: text
    )
    cleared = Principal(subject="ceo", authenticated=True, clearance="restricted")
    with acting_as(cleared), pytest.raises(AccessDenied) as caught:
        tool()
    assert caught.value.code == "mislabelled_source"


def test_plain_text_shaped_like_json_without_a_label_still_flows() -> None:
    from aiinvariants import Guard, Policy, Principal, acting_as

    guard = Guard(Policy(exposure="public"))
    text = "[1] First result: the public price list, updated weekly"
    tool = guard.tool(name="search_plain", data="public", exposure="public")(
        lambda: text
    )
    with acting_as(Principal(subject="ceo", authenticated=True)):
        assert tool() == text


def test_a_long_text_shaped_like_json_without_a_label_still_flows() -> None:
    from aiinvariants import Guard, Policy, Principal, acting_as

    guard = Guard(Policy(exposure="public"))
    text = "[1] " + "public price list " * 70_000
    tool = guard.tool(name="search_long", data="public", exposure="public")(
        lambda: text
    )
    with acting_as(Principal(subject="ceo", authenticated=True)):
        assert tool() == text


def _fastapi_app(seen: list[Any]) -> Any:
    from fastapi import Depends, FastAPI

    from aiinvariants import Guard, Policy
    from aiinvariants.integrations.fastapi import FastAPIAuth

    auth = FastAPIAuth(Guard(Policy()), verifier=verifier())
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/manual", dependencies=[Depends(auth.user)])
    async def manual(request: Request) -> dict[str, str]:
        async with request.form() as form:
            seen.append(sorted(form.keys()))
        return {}

    @app.post("/stream", dependencies=[Depends(auth.user)])
    async def stream(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        seen.append(size)
        return {"size": size}

    auth.install(app)
    return app


async def _fastapi_post(app: Any, path: str, body: bytes) -> int:
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def stream() -> Any:
        for chunk in chunks:
            yield chunk

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://api.example.test"
    ) as client:
        try:
            response = await client.post(
                path,
                content=stream(),
                headers={
                    "authorization": f"Bearer {GOOD}",
                    "content-type": f"multipart/form-data; boundary={BOUNDARY}",
                },
            )
        except Exception:  # the route saw a disconnect: no answer at all
            return 0
        return response.status_code


def test_fastapi_a_route_reading_the_form_itself_never_reads_a_token_part() -> None:
    seen: list[Any] = []
    app = _fastapi_app(seen)
    status = asyncio.run(
        _fastapi_post(app, "/manual", _multipart('name="access_token"', OTHER))
    )
    assert status != 200
    assert seen == []
    assert (
        asyncio.run(_fastapi_post(app, "/manual", _multipart('name="n"', "v"))) == 200
    )
    assert seen == [["n"]]


def test_fastapi_a_streamed_upload_is_still_read_by_its_route() -> None:
    """The multipart check must not read the body a route streams itself."""
    seen: list[Any] = []
    app = _fastapi_app(seen)
    body = _multipart('name="file"; filename="a.bin"', "x" * (5 * 1024 * 1024))
    assert asyncio.run(_fastapi_post(app, "/stream", body)) == 200
    assert seen == [len(body)]


@pytest.mark.parametrize(
    "text",
    [
        '[{"classific\\u0061tion": "confidential", "text": "Q3",}]',
        '{"classific\\u0061tion": "confidential", "score": NaN}',
        "[{'classific\\x61tion': 'confidential'}]",
    ],
    ids=["escaped, trailing comma", "escaped, NaN", "python escape"],
)
def test_an_escaped_label_in_almost_json_is_withheld(text: str) -> None:
    from aiinvariants import AccessDenied, Guard, Policy, Principal, acting_as

    guard = Guard(Policy(exposure="public"))
    tool = guard.tool(name="search_esc", data="public", exposure="public")(lambda: text)
    cleared = Principal(subject="ceo", authenticated=True, clearance="restricted")
    with acting_as(cleared), pytest.raises(AccessDenied) as caught:
        tool()
    assert caught.value.code == "mislabelled_source"


def test_label_free_json_with_a_nan_still_flows() -> None:
    from aiinvariants import Guard, Policy, Principal, acting_as

    guard = Guard(Policy(exposure="public"))
    text = '{"score": NaN, "text": "public price list"}'
    tool = guard.tool(name="search_nan", data="public", exposure="public")(lambda: text)
    with acting_as(Principal(subject="ceo", authenticated=True)):
        assert tool() == text


def test_guarding_a_fastmcp_server_again_with_other_settings_is_refused() -> None:
    """A second guard_fastmcp(allow_anonymous=False) silently kept the first
    call's allow_anonymous=True: anonymous callers stayed let in."""
    import fastmcp

    from aiinvariants import Guard, Policy, PolicyError
    from aiinvariants.integrations.fastmcp import guard_fastmcp

    guard = Guard(Policy())
    server = fastmcp.FastMCP("rt")
    first = guard_fastmcp(guard, server, allow_anonymous=True)
    assert guard_fastmcp(guard, server, allow_anonymous=True) is first
    with pytest.raises(PolicyError):
        guard_fastmcp(guard, server, allow_anonymous=False)
    with pytest.raises(PolicyError):
        guard_fastmcp(guard, server)
    with pytest.raises(PolicyError):
        guard_fastmcp(guard, server, allow_anonymous="false")  # type: ignore[arg-type]
