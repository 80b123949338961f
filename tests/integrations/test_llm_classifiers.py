"""Content classifiers (I10) against loopback servers speaking each service's shapes.

Each adapter is tested for a clean verdict, a flagged verdict, and the
failures that must each be a denial: timeout, 5xx, malformed answer.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import openai
import pytest

from aiinvariants import Guard, InsecureUsageWarning, OutputBlocked, Policy
from aiinvariants.filters.classifiers import (
    AzureContentSafetyClassifier,
    BedrockGuardrailsClassifier,
    ClassifierError,
    ClassifierFilter,
    OpenAICompatibleClassifier,
    OpenAIModerationClassifier,
    Verdict,
    classifiers_from_policy,
)
from aiinvariants.llm import guard_llm
from llm_support import (
    LLMServer,
    QuietServer,
    _close_clients,
    _signed_in,
    closing,
    llm_server,
)

__all__ = ["_close_clients", "_signed_in", "llm_server"]

SAFE = {
    "azure": {
        "categoriesAnalysis": [
            {"category": "Hate", "severity": 0},
            {"category": "Violence", "severity": 0},
        ],
        "blocklistsMatch": [],
    },
    "moderation": {
        "id": "modr-1",
        "model": "omni-moderation-latest",
        "results": [{"flagged": False, "categories": {"violence": False}}],
    },
    "guard": {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "safe"}}]
    },
    "bedrock": {"usage": {}, "action": "NONE", "outputs": [], "assessments": []},
}
FLAGGED = {
    "azure": {"categoriesAnalysis": [{"category": "Violence", "severity": 4}]},
    "moderation": {
        "results": [{"flagged": True, "categories": {"violence": True, "hate": False}}]
    },
    "guard": {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "unsafe\nS1,S10"}}
        ]
    },
    "bedrock": {
        "usage": {},
        "action": "GUARDRAIL_INTERVENED",
        "outputs": [{"text": "blocked"}],
        "assessments": [
            {
                "contentPolicy": {
                    "filters": [
                        {"type": "VIOLENCE", "confidence": "HIGH", "action": "BLOCKED"}
                    ]
                }
            }
        ],
    },
}
MALFORMED = {
    "azure": {"categories": []},
    "moderation": {"results": [{"flagged": "maybe", "categories": {}}]},
    "guard": {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "I think it is fine"},
            }
        ]
    },
    "bedrock": {"action": "PERHAPS"},
}


class ClassifierServer:
    """Answers every POST by ``mode``: safe, flagged, slow, 500, malformed, html."""

    def __init__(self) -> None:
        self.mode = "safe"
        self.hits = 0
        self.bodies: list[tuple[str, Any]] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                state.hits += 1
                state.bodies.append((self.path, body))
                kind = state.kind(self.path)
                status, doc = 200, SAFE[kind]
                if state.mode == "flagged":
                    doc = FLAGGED[kind]
                elif state.mode == "malformed":
                    doc = MALFORMED[kind]
                elif state.mode == "500":
                    status, doc = 503, {"error": "unavailable"}
                elif state.mode == "slow":
                    time.sleep(0.3)
                raw = (
                    b"<html>oops</html>"
                    if state.mode == "html"
                    else json.dumps(doc).encode()
                )
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(raw)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def kind(path: str) -> str:
        if "contentsafety" in path:
            return "azure"
        if path.endswith("/moderations"):
            return "moderation"
        if path.endswith("/chat/completions"):
            return "guard"
        return "bedrock"


@pytest.fixture(scope="module")
def server() -> Iterator[ClassifierServer]:
    s = ClassifierServer()
    yield s
    s.server.shutdown()
    s.server.server_close()


FAST = {"timeout_s": 0.2, "attempts": 2, "budget_s": 2.0}


_open: list[Any] = []


@pytest.fixture(autouse=True)
def _close_adapters() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def adapters(url: str) -> dict[str, Any]:
    made = {
        "azure": AzureContentSafetyClassifier(endpoint=url, api_key="k", **FAST),
        "moderation": OpenAIModerationClassifier(
            api_key="k", base_url=url + "/v1", **FAST
        ),
        "guard": OpenAICompatibleClassifier(
            base_url=url + "/v1", model="llama-guard-4", **FAST
        ),
        "bedrock": BedrockGuardrailsClassifier.from_region(
            "eu-central-1",
            guardrail_id="gr-123",
            guardrail_version="1",
            endpoint_url=url,
            **FAST,
        ),
    }
    _open.extend(made.values())
    return made


@pytest.fixture(autouse=True)
def _aws_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")


KINDS = ["azure", "moderation", "guard", "bedrock"]


@pytest.mark.parametrize("kind", KINDS)
def test_safe_and_flagged(server: ClassifierServer, kind: str) -> None:
    c = adapters(server.url)[kind]
    server.mode = "safe"
    assert c.classify("hello") == Verdict(False)
    server.mode = "flagged"
    verdict = c.classify("something violent")
    assert verdict.flagged
    assert verdict.categories


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["slow", "500", "malformed", "html"])
def test_failures_are_errors_and_denials(
    server: ClassifierServer, kind: str, mode: str
) -> None:
    c = adapters(server.url)[kind]
    server.mode = mode
    with pytest.raises(ClassifierError):
        c.classify("hello")
    findings = ClassifierFilter(c).scan("hello")
    assert [f.action for f in findings] == ["block"]
    assert findings[0].invariant == "I10"


def test_transient_errors_are_retried_within_budget(server: ClassifierServer) -> None:
    c = OpenAIModerationClassifier(
        api_key="k", base_url=server.url, timeout_s=1, attempts=3, budget_s=5
    )
    _open.append(c)
    server.mode, server.hits = "500", 0
    with pytest.raises(ClassifierError):
        c.classify("x")
    assert server.hits == 3
    server.mode, server.hits = "malformed", 0
    with pytest.raises(ClassifierError):
        c.classify("x")
    assert server.hits == 1  # a malformed answer is not retried


def test_fail_open_is_named_and_warned(server: ClassifierServer) -> None:
    with pytest.warns(InsecureUsageWarning):
        c = OpenAIModerationClassifier(
            api_key="k", base_url=server.url, fail_open=True, **FAST
        )
    _open.append(c)
    server.mode = "500"
    assert ClassifierFilter(c).scan("hello") == []


def test_request_shapes(server: ClassifierServer) -> None:
    server.mode = "safe"
    server.bodies.clear()
    for c in adapters(server.url).values():
        c.classify("the text")
    paths = [p for p, _ in server.bodies]
    assert paths[0] == "/contentsafety/text:analyze?api-version=2024-09-01"
    assert server.bodies[0][1]["text"] == "the text"
    assert paths[1] == "/v1/moderations"
    assert server.bodies[1][1] == {
        "model": "omni-moderation-latest",
        "input": "the text",
    }
    assert server.bodies[2][1]["messages"][-1] == {
        "role": "assistant",
        "content": "the text",
    }
    assert paths[3] == "/guardrail/gr-123/version/1/apply"
    assert server.bodies[3][1] == {
        "source": "OUTPUT",
        "content": [{"text": {"text": "the text"}}],
    }


def test_guarded_client_runs_classifiers(
    server: ClassifierServer, llm_server: LLMServer
) -> None:
    guard = Guard(Policy(regions={"declared": {llm_server.url: "eu-west-1"}}))
    mod = OpenAIModerationClassifier(api_key="k", base_url=server.url, **FAST)
    _open.append(mod)
    client = guard_llm(
        guard,
        closing(openai.OpenAI(api_key="k", base_url=llm_server.url + "/v1")),
        classifiers=[mod],
    )
    msgs = [{"role": "user", "content": "a perfectly fine answer"}]
    server.mode = "safe"
    result = client.chat.completions.create(model="gpt-4.1", messages=msgs)
    assert result.choices[0].message.content == "a perfectly fine answer"
    for mode in ("flagged", "slow"):
        server.mode = mode
        with pytest.raises(OutputBlocked) as info:
            client.chat.completions.create(model="gpt-4.1", messages=msgs)
        assert info.value.invariant == "I10"
        got: list[str] = []
        stream = client.chat.completions.create(
            model="gpt-4.1", messages=msgs, stream=True
        )
        with pytest.raises(OutputBlocked):
            got.extend(c.choices[0].delta.content or "" for c in stream)
        assert "".join(got) == ""  # a classified stream is held back until judged


def test_classifiers_from_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOD_KEY", "k")
    policy = Policy(
        outputs={
            "classifiers": [
                {"kind": "openai_moderation", "api_key_env": "MOD_KEY"},
                {
                    "kind": "openai_compatible",
                    "base_url": "http://127.0.0.1:9/v1",
                    "model": "lg",
                },
                {
                    "kind": "bedrock_guardrails",
                    "guardrail_id": "gr-1",
                    "region": "eu-central-1",
                },
            ]
        }
    )
    made = classifiers_from_policy(policy)
    _open.extend(made)
    kinds = [c.name for c in made]
    assert kinds == ["openai_moderation", "openai_compatible", "bedrock_guardrails"]
    monkeypatch.delenv("MOD_KEY")
    from aiinvariants import PolicyError

    with pytest.raises(PolicyError):
        classifiers_from_policy(policy)


def test_the_old_llm_classifiers_path_still_names_the_same_objects() -> None:
    import importlib
    import sys

    import aiinvariants.filters.classifiers as moved

    sys.modules.pop("aiinvariants.llm.classifiers", None)
    try:
        with pytest.warns(DeprecationWarning, match="private since 0.2"):
            old = importlib.import_module("aiinvariants.llm.classifiers")
    finally:
        sys.modules.pop("aiinvariants.llm.classifiers", None)
    assert old is moved
