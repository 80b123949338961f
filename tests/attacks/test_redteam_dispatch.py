"""Red team: the one dispatch table (#18 part B), attacked by its other routes.

Attacks that got through the change as merged, by class; each test asserts
the secure outcome and its stable code.

1. Routed to none, run unguarded (I3): the dispatch table is consulted for
   the object itself only, so a *bound method, partial or wrapper* of a
   framework tool (``lc_tool.invoke``, ``partial(lc_tool.invoke, ...)``,
   ``partial(StructuredTool.invoke, lc_tool)``, an Agents FunctionTool's
   ``on_invoke_tool``, an MCP ``session.call_tool``) fell through to the
   plain-callable guard: registered under the method's name, the policy's
   entry for the tool (``life_safety``) was never read and the forbidden
   tool ran. A LlamaIndex tool (callable, no integration) did the same.
2. Declaration borrowed (I3): ``guard.tool(name="lookup")`` on a LangChain
   tool named ``open_floodgate`` checked the policy's ``lookup`` entry
   while the model kept calling ``open_floodgate`` (the Agents door
   refused this; the LangChain door did not).
3. Routed to none (I5/I6): ``guard.llm(client.chat.completions.create,
   model=..., endpoint=...)`` (or a boto3 ``client.converse``, a LangChain
   model's ``invoke``) took the plain-callable path: the request went out
   with the model and region the *arguments* claimed, not what the SDK
   sent, and only the answer was refused.
4. Option reshaped (I5): a plain callable's model was read from the call's
   own arguments, else ``model=``; the model a ``functools.partial`` fixes
   or a ``model`` parameter's default, which is what really runs, was
   never checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from aiinvariants import Guard, ModelDenied, Policy, PolicyError, Principal, acting_as
from aiinvariants.integrations._dispatch import UNSUPPORTED
from recording_server import Recorder

POLICY = Policy.from_dict(
    {
        "tools": {
            "open_floodgate": {"capabilities": ["life_safety"]},
            "lookup": {"data": "public"},
        },
        "models": {"allow": ["gpt-4.1*", "claude-*"], "deny": ["*deepseek*"]},
        "regions": {
            "allow": ["eu-*"],
            "declared": {"https://eu.example.com": "eu-west-1"},
        },
    }
)
USER = Principal(subject="u", authenticated=True, clearance="restricted")
EU = "https://eu.example.com"


def _floodgate(ran: list[str]) -> Callable[..., str]:
    # Capabilities stick to code: every case compiles its own function.
    namespace: dict[str, Any] = {"ran": ran}
    exec(  # noqa: S102 - fixed source, compiled afresh per case
        "def open_floodgate(q: str = 'x') -> str:\n"
        "    '''Open the floodgate.'''\n"
        "    ran.append(q)\n"
        "    return 'opened'\n",
        namespace,
    )
    fn: Callable[..., str] = namespace["open_floodgate"]
    return fn


def _wrap_then_run(wrap: Callable[[], Any], run: Callable[[Any], Any]) -> None:
    """Wrap; if that is allowed, run what the merged change let through."""
    guarded = wrap()
    with acting_as(USER), contextlib.suppress(Exception):
        result = run(guarded)
        if asyncio.iscoroutine(result):
            asyncio.run(result)


@pytest.fixture
def session() -> Iterator[Any]:
    import mcp

    send, receive = anyio.create_memory_object_stream[Any](1)
    yield mcp.ClientSession(receive, send)
    send.close()
    receive.close()


def _reaching(shape: str, ran: list[str], session: Any) -> Any:
    """A callable that runs the forbidden tool through a framework object."""
    from langchain_core.tools import StructuredTool

    lc = StructuredTool.from_function(_floodgate(ran))
    if shape == "lc.invoke":
        return lc.invoke
    if shape == "lc.run":
        return lc.run
    if shape == "lc.ainvoke":
        return lc.ainvoke
    if shape == "partial(lc.invoke)":
        return functools.partial(lc.invoke, {"q": "p"})
    if shape == "partial(StructuredTool.invoke, lc)":
        return functools.partial(StructuredTool.invoke, lc)
    if shape == "wraps(lc.invoke)":

        @functools.wraps(lc.invoke)
        def relay(*args: Any, **kwargs: Any) -> Any:
            return lc.invoke(*args, **kwargs)

        return relay
    if shape == "agents on_invoke_tool":
        from agents import function_tool

        return function_tool(_floodgate(ran)).on_invoke_tool
    if shape == "mcp session.call_tool":
        return session.call_tool
    if shape == "partial(session.call_tool)":
        return functools.partial(session.call_tool, "open_floodgate")
    if shape == "llamaindex FunctionTool":
        from llama_index.core.tools import FunctionTool

        return FunctionTool.from_defaults(fn=_floodgate(ran))
    if shape == "llamaindex tool.call":
        from llama_index.core.tools import FunctionTool

        return FunctionTool.from_defaults(fn=_floodgate(ran)).call
    raise AssertionError(shape)


SHAPES = [
    "lc.invoke",
    "lc.run",
    "lc.ainvoke",
    "partial(lc.invoke)",
    "partial(StructuredTool.invoke, lc)",
    "wraps(lc.invoke)",
    "agents on_invoke_tool",
    "mcp session.call_tool",
    "partial(session.call_tool)",
    "llamaindex FunctionTool",
    "llamaindex tool.call",
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", [None, "lookup"])
def test_a_framework_tool_reached_through_a_method_is_not_a_plain_function(
    shape: str, name: str | None, session: Any
) -> None:
    ran: list[str] = []
    reaching = _reaching(shape, ran, session)
    guard = Guard(POLICY)
    # the merged change made a plain tool that runs the floodgate
    with pytest.raises(PolicyError) as caught:
        _wrap_then_run(lambda: guard.tool(name=name)(reaching), lambda t: t({"q": "a"}))
    assert caught.value.code == UNSUPPORTED
    assert ran == []


def test_the_framework_tools_own_function_is_still_a_plain_function() -> None:
    # the way to guard a LlamaIndex tool: its function, under its own name
    from llama_index.core.tools import FunctionTool

    ran: list[str] = []
    tool = FunctionTool.from_defaults(fn=_floodgate(ran))
    with pytest.raises(PolicyError, match="forbidden"):
        Guard(POLICY).tool()(tool.fn)

    def lookup(q: str = "x") -> str:
        return q

    guarded = Guard(POLICY).tool()(FunctionTool.from_defaults(fn=lookup).fn)
    with acting_as(USER):
        assert guarded("menu") == "menu"


@pytest.mark.parametrize("door", ["guard.tool", "langchain_tools.guard_tool"])
def test_a_langchain_tool_cannot_borrow_another_tools_declaration(door: str) -> None:
    from langchain_core.tools import StructuredTool

    from aiinvariants.integrations.langchain_tools import guard_tool

    ran: list[str] = []
    floodgate = StructuredTool.from_function(_floodgate(ran))
    guard = Guard(POLICY)
    wrap: Callable[[], Any] = (
        (lambda: guard.tool(name="lookup")(floodgate))
        if door == "guard.tool"
        else (lambda: guard_tool(guard, floodgate, name="lookup"))
    )
    with pytest.raises(PolicyError) as caught:
        _wrap_then_run(wrap, lambda t: t.invoke({"q": "a"}))
    assert caught.value.code == "declared_name_differs"
    assert ran == []
    # its own name (or none) is fine, and reads the policy's entry
    with pytest.raises(PolicyError, match="forbidden"):
        guard.tool(name="open_floodgate")(floodgate)


def test_the_agents_door_refuses_a_borrowed_name_with_the_same_code() -> None:
    from agents import function_tool

    floodgate = function_tool(_floodgate([]))
    with pytest.raises(PolicyError) as caught:
        Guard(POLICY).tool(name="lookup")(floodgate)
    assert caught.value.code == "declared_name_differs"


# -- SDK methods given to guard.llm as plain callables --------------------------


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


def _sdk_method(kind: str, url: str) -> tuple[Any, dict[str, Any]]:
    messages = [{"role": "user", "content": "hi"}]
    if kind == "openai chat.completions.create":
        import openai

        client = openai.OpenAI(api_key="k", base_url=url, max_retries=0)
        return client.chat.completions.create, {
            "model": "gpt-4.1",
            "messages": messages,
        }
    if kind == "openai with_raw_response.create":
        import openai

        client = openai.OpenAI(api_key="k", base_url=url, max_retries=0)
        return client.chat.completions.with_raw_response.create, {
            "model": "gpt-4.1",
            "messages": messages,
        }
    if kind == "anthropic messages.create":
        import anthropic

        aclient = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        return aclient.messages.create, {
            "model": "claude-sonnet-4",
            "max_tokens": 5,
            "messages": messages,
        }
    if kind == "partial(openai create)":
        import openai

        client = openai.OpenAI(api_key="k", base_url=url, max_retries=0)
        create = functools.partial(
            client.chat.completions.create, model="gpt-4.1", messages=messages
        )
        return create, {}
    if kind == "boto3 converse":
        import boto3

        brt = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )
        return brt.converse, {
            "modelId": "deepseek.r1-v1:0",
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        }
    if kind == "ChatOpenAI.invoke":
        from langchain_openai import ChatOpenAI

        chat = ChatOpenAI(model="gpt-4.1", api_key="k", base_url=url, max_retries=0)  # type: ignore[arg-type]
        return functools.partial(chat.invoke, "hi"), {}
    raise AssertionError(kind)


SDK_METHODS = [
    "openai chat.completions.create",
    "openai with_raw_response.create",
    "anthropic messages.create",
    "partial(openai create)",
    "boto3 converse",
    "ChatOpenAI.invoke",
]


@pytest.mark.parametrize("kind", SDK_METHODS)
def test_an_sdk_method_is_not_guarded_as_a_plain_llm_function(
    kind: str, recorder: Recorder
) -> None:
    method, call = _sdk_method(kind, recorder.url)
    guard = Guard(POLICY)
    # the merged change sent the request unchecked, then refused the answer
    with pytest.raises(PolicyError) as caught:
        _wrap_then_run(
            lambda: guard.llm(method, model="gpt-4.1", endpoint=EU),
            lambda g: g(**call),
        )
    assert caught.value.code == UNSUPPORTED
    assert recorder.seen == []


# -- the model a plain callable really runs ----------------------------------


def _llms(sent: list[str]) -> dict[str, Callable[..., Any]]:
    def default(prompt: str, model: str = "deepseek-chat") -> str:
        sent.append(model)
        return "hi"

    def positional(model: str, prompt: str) -> str:
        sent.append(model)
        return "hi"

    async def adefault(prompt: str, model: str = "deepseek-chat") -> str:
        sent.append(model)
        return "hi"

    return {
        "a model parameter's default": default,
        "partial(model=...)": functools.partial(default, model="deepseek-chat"),
        "partial(model) positionally": functools.partial(positional, "deepseek-chat"),
        "partial of a partial": functools.partial(
            functools.partial(default, model="deepseek-chat")
        ),
        "async default": adefault,
    }


def _run(result: Any) -> Any:
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


@pytest.mark.parametrize("shape", sorted(_llms([])))
def test_the_model_a_callable_really_runs_is_the_one_checked(shape: str) -> None:
    sent: list[str] = []
    fn = _llms(sent)[shape]
    guarded = Guard(POLICY).llm(fn, model="gpt-4.1", endpoint=EU)
    with acting_as(USER), pytest.raises(ModelDenied) as caught:
        _run(guarded("q"))
    assert caught.value.code == "model_denied"
    assert sent == []


def test_a_declared_model_still_applies_where_the_callable_takes_it() -> None:
    sent: list[Any] = []

    def fixed(prompt: str) -> str:
        return "hi"

    def defaults_to_none(prompt: str, model: str | None = None) -> str:
        sent.append(model)
        return "hi"

    guard = Guard(POLICY)
    with acting_as(USER):
        assert guard.llm(fixed, model="gpt-4.1", endpoint=EU)("q") == "hi"
        allowed = guard.llm(defaults_to_none, model="gpt-4.1", endpoint=EU)
        assert allowed("q") == "hi"
        assert allowed("q", model="gpt-4.1-mini") == "hi"
        with pytest.raises(ModelDenied):
            allowed("q", model="deepseek-chat")
        # explicitly no model: nothing to check, refused as before
        with pytest.raises(ModelDenied) as caught:
            allowed("q", model=None)
        assert caught.value.code == "model_unknown"
    assert sent == [None, "gpt-4.1-mini"]


# -- wrappers the code walk did not see through ----------------------------------


def test_a_wrapt_wrapper_of_forbidden_code_stays_forbidden() -> None:
    # wrapt proxies claim their target's class (isinstance(w, FunctionType)),
    # and keep __wrapped__ in a C slot: the I3 walk stopped at the wrapper
    import wrapt

    @wrapt.decorator
    def logged(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    ran: list[str] = []
    forbidden = _floodgate(ran)
    guard = Guard(POLICY)
    with pytest.raises(PolicyError, match="forbidden"):
        guard.tool()(forbidden)
    with pytest.raises(PolicyError, match="forbidden"):
        _wrap_then_run(
            lambda: guard.tool(name="lookup", data="public")(logged(forbidden)),
            lambda t: t(),
        )
    assert ran == []

    # wrapt's wrapper class is shared by every wrapt-decorated function: the
    # refusal sticks to the forbidden code, not to the wrapper class
    def lookup(q: str = "x") -> str:
        return q

    benign = guard.tool(name="lookup", data="public")(logged(lookup))
    with acting_as(USER):
        assert benign("menu") == "menu"


def test_an_app_package_named_like_a_framework_is_still_app_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the refusal above is for the framework's code, not for an app whose
    # own package shares a framework's name while that framework is absent
    import sys
    import types

    monkeypatch.delitem(sys.modules, "agents.tool", raising=False)
    app = types.ModuleType("agents.research")
    exec(  # noqa: S102 - fixed source
        "def lookup(q: str = 'x') -> str:\n    return q\n", app.__dict__
    )
    guarded = Guard(POLICY).tool(data="public")(app.lookup)
    with acting_as(USER):
        assert guarded("menu") == "menu"


def test_a_function_given_a_client_needs_the_guarded_client() -> None:
    import openai

    def complete(prompt: str, *, client: Any, model: str = "gpt-4.1") -> str:
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
        return str(answer.choices[0].message.content)

    guard = Guard(POLICY)
    raw = openai.OpenAI(api_key="k", base_url=EU, max_retries=0)
    with pytest.raises(PolicyError) as caught:
        guard.llm(functools.partial(complete, client=raw), endpoint=EU)
    assert caught.value.code == UNSUPPORTED
    # the guarded client checks the request it sends itself: taken
    guarded = guard.llm(raw)
    assert callable(guard.llm(functools.partial(complete, client=guarded), endpoint=EU))
    raw.close()


@pytest.mark.xfail(
    strict=True,
    reason="a framework tool a plain function only refers to (closure cell or "
    "global, no __wrapped__) is not found: the I3 references walk keeps "
    "callables only and a BaseTool is not callable; refusing every function "
    "that refers to a framework object would also refuse functions that "
    "call a guarded one",
)
def test_a_plain_function_relaying_to_a_framework_tool_is_refused() -> None:
    from langchain_core.tools import StructuredTool

    ran: list[str] = []
    floodgate = StructuredTool.from_function(_floodgate(ran))

    def relay(q: str = "x") -> Any:
        return floodgate.invoke({"q": q})

    guard = Guard(POLICY)
    with pytest.raises(PolicyError) as caught:
        _wrap_then_run(lambda: guard.tool(name="lookup")(relay), lambda t: t())
    assert caught.value.code == UNSUPPORTED
    assert ran == []
