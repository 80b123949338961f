"""Overhead of guarded OpenAI Agents SDK tools and guardrails (issue #14).

Two measurements, each side by side in one run:

- one tool call through ``FunctionTool.on_invoke_tool``, as the SDK makes
  it: the SDK's own tool, the guarded tool (decision, data ceiling, output
  pipeline on a short result);
- one whole ``Runner.run`` turn against a loopback model server (a tool call
  and a final answer: two HTTP requests): a plain agent on a plain client,
  then the guarded agent (tools and both guardrails) on a guarded client.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._harness import compare, print_table

_ANSWER = "the printer on floor 3 is out of toner; a ticket was opened"


class _Model(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        done = body["messages"][-1]["role"] == "tool"
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if done:
            message["content"] = "summary: " + body["messages"][-1]["content"]
        else:
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "read_ticket",
                        "arguments": json.dumps({"ticket_id": "T-7"}),
                    },
                }
            ]
        raw = json.dumps(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def run() -> None:
    try:
        from agents import (
            Agent,
            OpenAIChatCompletionsModel,
            Runner,
            function_tool,
            set_tracing_disabled,
        )
        from agents.tool_context import ToolContext
        from openai import AsyncOpenAI
    except ImportError:
        print("\nagents tools: skipped (the openai-agents extra is not installed)")
        return
    from aiinvariants import Guard, Policy, Principal, acting_as
    from aiinvariants.integrations.openai_agents import (
        guard_agent,
        guard_function_tool,
    )

    set_tracing_disabled(True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    guard = Guard(
        Policy(
            models={"allow": ["gpt-4.1*"]},
            regions={"allow": ["eu-*"], "declared": {url: "eu-west-1"}},
            clearance={"scopes": {"tickets:read": "internal"}},
            tools={"read_ticket": {"scopes": ["tickets:read"], "data": "internal"}},
        )
    )
    alice = Principal(subject="alice", authenticated=True, scopes={"tickets:read"})

    def read_ticket(ticket_id: str) -> str:
        """Read a ticket."""
        return _ANSWER

    async def read_ticket_async(ticket_id: str) -> str:
        """Read a ticket."""
        return _ANSWER

    plain_tool = function_tool(read_ticket_async, name_override="read_ticket")
    guarded_tool = guard_function_tool(
        guard, function_tool(read_ticket_async, name_override="read_ticket")
    )
    args = json.dumps({"ticket_id": "T-7"})
    ctx = ToolContext(
        context=None, tool_name="read_ticket", tool_call_id="c1", tool_arguments=args
    )
    loop = asyncio.new_event_loop()
    try:
        with acting_as(alice):
            calls = compare(
                {
                    "SDK function tool": lambda: loop.run_until_complete(
                        plain_tool.on_invoke_tool(ctx, args)
                    ),
                    "guarded function tool": lambda: loop.run_until_complete(
                        guarded_tool.on_invoke_tool(ctx, args)
                    ),
                },
                baseline="SDK function tool",
                number=300,
                repeat=9,
            )
        print_table("agents SDK: one tool call via on_invoke_tool (allowed)", calls)

        plain_client = AsyncOpenAI(api_key="k", base_url=url + "/v1", max_retries=0)
        guarded_client = guard.llm(
            AsyncOpenAI(api_key="k", base_url=url + "/v1", max_retries=0)
        )
        plain = Agent(
            name="support",
            instructions="Help with tickets.",
            model=OpenAIChatCompletionsModel(
                model="gpt-4.1", openai_client=plain_client
            ),
            tools=[function_tool(read_ticket)],
        )
        guarded = guard_agent(
            guard,
            Agent(
                name="support",
                instructions="Help with tickets.",
                model=OpenAIChatCompletionsModel(
                    model="gpt-4.1", openai_client=guarded_client
                ),
                tools=[function_tool(read_ticket)],
            ),
        )
        with acting_as(alice):
            turns = compare(
                {
                    "plain agent, plain client": lambda: loop.run_until_complete(
                        Runner.run(plain, "read T-7")
                    ),
                    "guard_agent + guardrails + guarded client": lambda: (
                        loop.run_until_complete(Runner.run(guarded, "read T-7"))
                    ),
                },
                baseline="plain agent, plain client",
                number=20,
                repeat=9,
            )
        print_table("agents SDK: one Runner.run (tool call + answer, loopback)", turns)
        loop.run_until_complete(plain_client.close())
        loop.run_until_complete(guarded_client.close())
    finally:
        loop.close()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    run()
