"""The LLM guard at the wire, for httpx-based SDKs (openai, anthropic).

:class:`WireCheck` reads the HTTP request an SDK really sends: the endpoint
family from the method and path (an endpoint it does not know is refused
before anything is sent), the model from the body and from the path
(Azure deployments, Bedrock and Vertex put it there), the data-use switches
from the body and the region from the request's own URL. It runs
:meth:`CallGuard.before` on that, plants the system-prompt canary, and
rewrites the body when something changed. Answers are then filtered whole
(JSON) or event by event (server-sent events).

:func:`wire_http_client` gives a copy of the SDK's httpx client whose
transports (the default one and every mount) run the check on every
request that goes out, redirects included. The guarded SDK client also
runs it in its ``_prepare_request`` hook, before request signing; a request
checked there carries a keyed tag so the transport does not decide twice.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from aiinvariants._errors import PolicyError
from aiinvariants._internal import strict_json
from aiinvariants.llm._regions import Placement, region_from_url
from aiinvariants.llm._sse import SSERewriter, new_fields, rewriter_for
from aiinvariants.llm._walk import NOT_JSON, loads, walk

if TYPE_CHECKING:
    from aiinvariants.llm._guarded import CallGuard

__all__ = ["Route", "WireCheck", "route_of", "wire_http_client"]

_TAG: Final = "aiinvariants.checked"
_FAMILY: Final = "aiinvariants.family"
_STREAM: Final = "aiinvariants.stream"
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})


@dataclass(frozen=True)
class Route:
    """What an endpoint is: its family, and a model its path names."""

    family: str
    path_model: str | None = None


#: (methods, path pattern, family). Families: chat, completions, responses,
#: messages (a model answers), count (token counting), embed, read (fetches
#: stored answers), none (no content either way). First match wins.
_ROUTES: Final[dict[str, list[tuple[frozenset[str], re.Pattern[str], str]]]] = {
    "openai": [
        (frozenset({"POST"}), re.compile(r"/chat/completions$"), "chat"),
        (frozenset({"POST"}), re.compile(r"/completions$"), "completions"),
        (frozenset({"POST"}), re.compile(r"/responses/input_tokens$"), "count"),
        (frozenset({"POST"}), re.compile(r"/responses$"), "responses"),
        (frozenset({"POST"}), re.compile(r"/embeddings$"), "embed"),
        (
            frozenset({"GET", "DELETE"}),
            re.compile(r"/chat/completions/[^/]+(?:/messages)?$"),
            "read",
        ),
        (
            frozenset({"GET", "DELETE"}),
            re.compile(r"/responses/[^/]+(?:/input_items)?$"),
            "read",
        ),
        (frozenset({"POST"}), re.compile(r"/responses/[^/]+/cancel$"), "read"),
        (frozenset({"GET"}), re.compile(r"/models(?:/[^/]+)?$"), "none"),
    ],
    "anthropic": [
        (frozenset({"POST"}), re.compile(r"/v1/messages$"), "messages"),
        (frozenset({"POST"}), re.compile(r"/v1/messages/count_tokens$"), "count"),
        (frozenset({"GET"}), re.compile(r"/v1/models(?:/[^/]+)?$"), "none"),
        (frozenset({"POST"}), re.compile(r"/model/(?P<m>[^/]+)/invoke$"), "messages"),
        (
            frozenset({"POST"}),
            re.compile(r"/models/(?P<m>[^/]+):(?:stream)?rawPredict$"),
            "messages",
        ),
    ],
}
_DEPLOYMENT: Final = re.compile(r"/deployments/(?P<m>[^/]+)/")


def route_of(provider: str, method: str, raw_path: str) -> Route:
    """The route of a request, or ``PolicyError`` for an endpoint not understood."""
    for methods, pattern, family in _ROUTES[provider]:
        match = pattern.search(raw_path)
        if match is None or method not in methods:
            continue
        model = match.groupdict().get("m")
        if model is None and provider == "openai":
            deployment = _DEPLOYMENT.search(raw_path)
            model = deployment.group("m") if deployment else None
        if model is not None:
            model = unquote(model)
            if model == "count-tokens":  # Vertex token counting
                return Route("count")
        return Route(family, model)
    raise PolicyError(
        f"the guarded {provider} client does not send {method} {raw_path}: the "
        "guard cannot check what this endpoint sends or returns. Use the raw "
        "client deliberately for it, outside the guard"
    )


_WORD: Final = re.compile(r"[A-Za-z_.:-]{1,40}|v\d{1,2}(?:beta\d?|alpha\d?)?")


def _path_shape(raw_path: str) -> str:
    """A path with every segment that is not a plain word (ids, tokens) as ``*``."""
    segments = raw_path[:400].split("/")
    return "/".join(s if not s or _WORD.fullmatch(s) else "*" for s in segments)


_NOT_JSON: Final = (
    "the request body is not strict JSON; the guard cannot read the model it "
    "names, so it is not sent"
)
_BODY_PROBLEMS: Final = {
    "duplicate_key": "the request body names a key twice; refused (a provider "
    "may read the other one)",
    "not_object": "the request body is not a JSON object; not sent",
}


class WireCheck:
    """The checks of one guarded client, on requests and answers."""

    def __init__(self, checks: CallGuard, provider: str) -> None:
        self.checks = checks
        self.provider = provider
        self._key = secrets.token_bytes(16)
        self._placements: dict[str, Placement] = {}

    # -- requests -------------------------------------------------------------

    def _placement(self, url: Any) -> Placement:
        origin = f"{url.scheme}://{url.host}:{url.port}"
        found = self._placements.get(origin)
        if found is None:
            declared = self.checks.guard.policy.regions.declared
            found = region_from_url(str(url), declared)
            if len(self._placements) < 64:
                self._placements[origin] = found
        return found

    def _tag(self, request: Any) -> str:
        mac = hashlib.blake2b(key=self._key, digest_size=16)
        mac.update(request.method.encode())
        mac.update(str(request.url).encode())
        mac.update(request.content)
        return mac.hexdigest()

    def check_request(
        self, request: Any, *, in_place: bool, proxied: bool = False
    ) -> Any:
        """Check a request; return the request to send.

        ``in_place`` (the SDK's ``_prepare_request`` hook): the body is
        rewritten in the request itself and the request tagged as checked.
        Otherwise (the transport) a tagged, unchanged request passes as it
        is and any other is checked and rebuilt if its body changes.
        ``proxied``: the transport that sends it goes through a proxy.
        """
        # the destination first: every request carries the API key
        self.checks.check_destination(str(request.url), proxied=proxied)
        raw_path = request.url.raw_path.decode("ascii", "replace").split("?", 1)[0]
        method = request.method.upper()
        try:
            route: Route | None = route_of(self.provider, method, raw_path)
        except PolicyError:
            route = None
        if route is None:
            # a path may carry ids or a credential: only its shape is told
            shape = _path_shape(raw_path)
            self.checks.guard.audit.record(
                invariant="I5",
                decision="deny",
                reason="endpoint_not_guarded",
                resource=self.checks.resource,
                details={"method": method, "path": shape},
            )
            raise PolicyError(
                f"the guarded {self.provider} client does not send {method} "
                f"{shape}: the guard cannot check what this endpoint sends or "
                "returns. Use the raw client deliberately for it, outside the guard"
            )
        # the answer's filter follows from the route, never from a caller's word
        request.extensions = {**request.extensions, _FAMILY: route.family}
        if request.url.params.get("stream", "").lower() == "true":
            request.extensions = {**request.extensions, _STREAM: True}
        tag = request.extensions.get(_TAG)
        if (
            not in_place
            and tag is not None
            and hmac.compare_digest(str(tag), self._tag(request))
        ):
            return request
        if route.family in {"read", "none"}:
            # no model, but the credential and stored answers still travel:
            # the destination's region holds for every request
            if self._raw(request).strip():
                raise PolicyError(
                    f"{request.method.upper()} {raw_path} carries a body; the "
                    "guard does not send a body it does not check"
                )
            self.checks.destination(self._placement(request.url))
            return request
        body = self._body(request)
        if body.get("stream") is True:
            # the SDK reads the answer as events whatever its content type says
            request.extensions = {**request.extensions, _STREAM: True}
        safe = self._decide(route, body, request.url)
        if safe != body:
            content = json.dumps(safe, ensure_ascii=False).encode()
            if in_place:
                request._content = content
                request.stream = _module_of(request).ByteStream(content)
                request.headers["content-length"] = str(len(content))
            else:
                request = _rebuild(request, content)
        if in_place:
            request.extensions = {**request.extensions, _TAG: self._tag(request)}
        return request

    @staticmethod
    def _raw(request: Any) -> bytes:
        try:
            raw: bytes = request.read()  # a streamed body is read whole
        except Exception:
            raise PolicyError(
                "the request body cannot be read before it is sent (an async "
                "stream?); the guard cannot check it, so it is not sent"
            ) from None
        return raw

    @classmethod
    def _body(cls, request: Any) -> dict[str, Any]:
        raw = cls._raw(request)
        if not raw:
            return {}
        try:
            return strict_json.loads_object(raw)
        except strict_json.StrictJSONError as exc:
            # not chained: a decode error would carry the whole body
            raise PolicyError(_BODY_PROBLEMS.get(exc.problem, _NOT_JSON)) from None

    def _decide(self, route: Route, body: dict[str, Any], url: Any) -> dict[str, Any]:
        placement = self._placement(url)
        switches = self.provider if route.family in {"chat", "responses"} else None
        models = [m for m in (route.path_model, body.get("model")) if m is not None]
        out = body
        for model in models or [None]:
            out = self.checks.before(model, out, placement=placement, switches=switches)
        if route.family in {"chat", "responses", "messages", "completions"}:
            out = _protect(self.checks, route.family, out)
        return out

    # -- answers --------------------------------------------------------------

    def json_body(self, raw: bytes, charset: str | None = None) -> bytes:
        """A JSON answer with every content string through the pipeline.

        A body that is not JSON is checked as the text the caller reads:
        decoded with the charset its content type names (``.text``).
        """
        if not raw.strip():
            return raw
        doc = loads(raw)
        if doc is NOT_JSON:
            encoding = charset or "utf-8"
            text = raw.decode(encoding, "replace")
            safe_text = self.checks.text(text)
            return raw if safe_text == text else safe_text.encode(encoding, "replace")
        safe = walk(doc, self.checks.text)
        if safe == doc:
            return raw
        return json.dumps(safe, ensure_ascii=False).encode()

    def sse(self, family: str) -> SSERewriter:
        """A rewriter for one streamed answer."""
        fields = new_fields(self.checks.stream, self.checks.text)
        return SSERewriter(rewriter_for(family, fields), self.checks.text)


def _rebuild(request: Any, content: bytes) -> Any:
    headers = request.headers.copy()
    headers["content-length"] = str(len(content))
    return type(request)(
        request.method,
        request.url,
        headers=headers,
        content=content,
        extensions=request.extensions,
    )


def _protect_content(checks: CallGuard, content: Any) -> Any:
    if isinstance(content, str):
        return checks.register_system(content)
    if isinstance(content, list):
        return [
            {**p, "text": checks.register_system(p["text"])}
            if isinstance(p, Mapping) and isinstance(p.get("text"), str)
            else p
            for p in content
        ]
    return content


def _protect(checks: CallGuard, family: str, body: dict[str, Any]) -> dict[str, Any]:
    """Register system texts with the leak filter; plant the app's canary."""
    out = dict(body)
    if family == "messages":
        if "system" in out:
            out["system"] = _protect_content(checks, out["system"])
        return out
    if isinstance(out.get("instructions"), str):
        out["instructions"] = checks.register_system(out["instructions"])
    key = "messages" if family == "chat" else "input"
    items = out.get(key)
    if isinstance(items, list):
        out[key] = [
            {**m, "content": _protect_content(checks, m.get("content"))}
            if isinstance(m, Mapping) and m.get("role") in _SYSTEM_ROLES
            else m
            for m in items
        ]
    return out


# -- the transports -----------------------------------------------------------------


def _proxied(transport: Any) -> bool:
    """True when an httpx transport sends through a proxy (HTTP or SOCKS).

    A plain-http request to a loopback host is then read in clear, API key
    included, by the proxy: another host (``HTTP_PROXY`` from the
    environment, which the SDKs' default clients trust, or the app's
    ``proxy=``/``mounts=``).
    """
    # an app's wrapper (retries, caching, logging) around the real transport
    for _ in range(8):
        if transport is None:
            return False
        if "Proxy" in type(getattr(transport, "_pool", None)).__name__:
            return True
        transport = next(
            (
                inner
                for name in _WRAPPED
                if (inner := getattr(transport, name, None)) is not None
                and inner is not transport
            ),
            None,
        )
    return False


#: where transport wrappers keep the transport they wrap
_WRAPPED: Final = ("inner", "_inner", "transport", "_transport", "wrapped", "_wrapped")


def _answer_kind(request: Any, response: Any) -> str:
    """How the SDK will read the answer: the filter must read it the same way.

    The SDKs read a successful answer to a streaming request as server-sent
    events whatever its content type says, so such an answer is filtered as
    events too (as JSON, a secret split over two events would pass).
    """
    ctype = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype == "text/event-stream":
        return "sse"
    if request.extensions.get(_STREAM) and 200 <= response.status_code < 300:
        return "sse"
    return "json"


_CLASSES: dict[Any, tuple[type[Any], type[Any]]] = {}


def _classes(mod: Any) -> tuple[type[Any], type[Any]]:
    """The transport classes for an httpx-like module (httpx or httpx2)."""
    found = _CLASSES.get(mod)
    if found is not None:
        return found

    class SSEStream(mod.SyncByteStream):  # type: ignore[misc]
        def __init__(self, response: Any, rewriter: SSERewriter) -> None:
            self._response = response
            self._rewriter = rewriter

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._response.iter_bytes():
                yield from self._rewriter.events(chunk)
            tail = self._rewriter.end()
            if tail:
                yield tail

        def close(self) -> None:
            self._response.close()

    class AsyncSSEStream(mod.AsyncByteStream):  # type: ignore[misc]
        def __init__(self, response: Any, rewriter: SSERewriter) -> None:
            self._response = response
            self._rewriter = rewriter

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._response.aiter_bytes():
                for out in self._rewriter.events(chunk):
                    yield out
            tail = self._rewriter.end()
            if tail:
                yield tail

        async def aclose(self) -> None:
            await self._response.aclose()

    def _headers(response: Any, length: int | None) -> Any:
        headers = response.headers.copy()
        headers.pop("content-encoding", None)
        headers.pop("content-length", None)
        if length is not None:
            headers["content-length"] = str(length)
        return headers

    class WireTransport(mod.BaseTransport):  # type: ignore[misc]
        def __init__(self, inner: Any, wire: WireCheck, owner: Any) -> None:
            self.inner = inner
            self.wire = wire
            self._owner = owner  # keeps the SDK's own client (and pool) alive

        def handle_request(self, request: Any) -> Any:
            request.read()  # a redirect's request arrives unread
            request = self.wire.check_request(
                request, in_place=False, proxied=_proxied(self.inner)
            )
            response = self.inner.handle_request(request)
            family = request.extensions[_FAMILY]
            if family == "none":
                return response
            if _answer_kind(request, response) == "sse":
                stream = SSEStream(response, self.wire.sse(family))
                return mod.Response(
                    response.status_code,
                    headers=_headers(response, None),
                    stream=stream,
                    request=request,
                    extensions=response.extensions,
                )
            try:
                body = self.wire.json_body(response.read(), response.charset_encoding)
            finally:
                response.close()
            return mod.Response(
                response.status_code,
                headers=_headers(response, len(body)),
                content=body,
                request=request,
                extensions=response.extensions,
            )

        def close(self) -> None:
            self.inner.close()

    class AsyncWireTransport(mod.AsyncBaseTransport):  # type: ignore[misc]
        def __init__(self, inner: Any, wire: WireCheck, owner: Any) -> None:
            self.inner = inner
            self.wire = wire
            self._owner = owner

        async def handle_async_request(self, request: Any) -> Any:
            await request.aread()  # a redirect's request arrives unread
            request = self.wire.check_request(
                request, in_place=False, proxied=_proxied(self.inner)
            )
            response = await self.inner.handle_async_request(request)
            family = request.extensions[_FAMILY]
            if family == "none":
                return response
            if _answer_kind(request, response) == "sse":
                stream = AsyncSSEStream(response, self.wire.sse(family))
                return mod.Response(
                    response.status_code,
                    headers=_headers(response, None),
                    stream=stream,
                    request=request,
                    extensions=response.extensions,
                )
            try:
                body = self.wire.json_body(
                    await response.aread(), response.charset_encoding
                )
            finally:
                await response.aclose()
            return mod.Response(
                response.status_code,
                headers=_headers(response, len(body)),
                content=body,
                request=request,
                extensions=response.extensions,
            )

        async def aclose(self) -> None:
            await self.inner.aclose()

    _CLASSES[mod] = (WireTransport, AsyncWireTransport)
    return WireTransport, AsyncWireTransport


def _module_of(obj: Any) -> Any:
    import sys

    for klass in type(obj).__mro__:
        root = klass.__module__.split(".", 1)[0]
        if root in {"httpx", "httpx2"}:
            return sys.modules[root]
    raise PolicyError(
        f"cannot guard an SDK client whose http client is a "
        f"{type(obj).__name__} (not httpx)"
    )


def wire_http_client(http_client: Any, wire: WireCheck) -> Any:
    """A copy of an SDK's httpx client whose every transport runs ``wire``."""
    mod = _module_of(http_client)
    sync_cls, async_cls = _classes(mod)
    cls = async_cls if isinstance(http_client, mod.AsyncClient) else sync_cls
    guarded = copy.copy(http_client)
    guarded._transport = cls(http_client._transport, wire, http_client)
    guarded._mounts = {
        pattern: None if transport is None else cls(transport, wire, http_client)
        for pattern, transport in http_client._mounts.items()
    }
    return guarded


def is_wired(http_client: Any, wire: WireCheck) -> bool:
    """True when every transport of ``http_client`` runs ``wire``."""
    transports = [
        getattr(http_client, "_transport", None),
        *getattr(http_client, "_mounts", {}).values(),
    ]
    return (
        all(t is None or getattr(t, "wire", None) is wire for t in transports)
        and transports[0] is not None
    )
