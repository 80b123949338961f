"""Guarded tools and guardrails for an OpenAI Agents SDK agent.

Self-contained: a tiny model server on 127.0.0.1 speaks the OpenAI chat
completions wire format (it calls the tools a message names, then sums up
what they returned), and the agent talks to it through a guarded client
(``guard.llm``). The agent has three tools:

- ``read_ticket``: needs the ``tickets:read`` scope the *user* delegated and
  returns internal data;
- ``send_email``: can send data out (``sends_external``), so in a run that
  has read private data and untrusted content it needs confirmation (I12);
- ``payroll``: its raw output is confidential; the output guardrail trips if
  the answer copies it.

A tool with the ``life_safety`` capability is refused when it is registered.

Needs the ``openai-agents`` extra: ``pip install "aiinvariants[openai-agents]"``.
Run: ``python examples/agents_tools.py``
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agents import (
    Agent,
    InputGuardrailTripwireTriggered,
    OpenAIChatCompletionsModel,
    OutputGuardrailTripwireTriggered,
    Runner,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from aiinvariants import Guard, Policy, PolicyError, Principal, acting_as
from aiinvariants.audit import MemorySink
from aiinvariants.integrations.openai_agents import guard_agent, guarded_function_tool
from aiinvariants.taint import ConfirmationRequest, agent_run

# -- a scripted model on loopback --------------------------------------------------


class FakeModel(BaseHTTPRequestHandler):
    """``call a, b`` makes the model call tools a and b; then it sums up."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        messages = body["messages"]
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        results = [m["content"] for m in messages[last_user:] if m["role"] == "tool"]
        text = messages[last_user]["content"]
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if results or not text.startswith("call "):
            message["content"] = " / ".join(results) if results else "hello"
        else:
            message["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": name.strip(), "arguments": ARGS[name.strip()]},
                }
                for i, name in enumerate(text[5:].split(","))
            ]
        answer = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
        raw = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


ARGS = {
    "read_ticket": json.dumps({"ticket_id": "T-7"}),
    "send_email": json.dumps({"to": "someone@example.org", "body": "T-7 details"}),
    "payroll": json.dumps({"month": "2026-11"}),
}

# -- the application ---------------------------------------------------------------


def main() -> None:
    set_tracing_disabled(True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    sink = MemorySink()
    guard = Guard(
        Policy(
            models={"allow": ["gpt-4.1*"]},
            regions={"allow": ["eu-*"], "declared": {url: "eu-west-1"}},
            clearance={"scopes": {"tickets:read": "internal"}},
            tools={
                "read_ticket": {"scopes": ["tickets:read"], "data": "internal"},
                "send_email": {"capabilities": ["sends_external"], "data": "public"},
                "payroll": {"data": "public", "confidential_output": True},
            },
        ),
        sinks=[sink],
    )

    try:

        @guarded_function_tool(guard, capabilities=["life_safety"])
        def open_floodgate(gate: int) -> str:
            """Open a floodgate."""
            return "opened"

    except PolicyError:
        print("registration: open_floodgate refused (life_safety is forbidden)")

    # hide_denied=False lets this example show the denial the model reads;
    # by default a tool the user may not call is not even offered.
    @guarded_function_tool(guard, hide_denied=False)
    def read_ticket(ticket_id: str) -> str:
        """Read a support ticket."""
        return f"ticket {ticket_id}: printer on fire"

    @guarded_function_tool(guard)
    def send_email(to: str, body: str) -> str:
        """Send an e-mail."""
        return f"sent to {to}"

    @guarded_function_tool(guard)
    def payroll(month: str) -> str:
        """Read the payroll of a month."""
        return f"payroll {month}: Ann 4200 EUR, Bob 3900 EUR, total 8100 EUR, paid"

    async def scenario() -> None:
        client = guard.llm(AsyncOpenAI(api_key="unused", base_url=url + "/v1"))
        agent = guard_agent(
            guard,
            Agent(
                name="support",
                instructions="Help the user with tickets.",
                model=OpenAIChatCompletionsModel(model="gpt-4.1", openai_client=client),
                tools=[read_ticket, send_email, payroll],
            ),
        )
        alice = Principal(subject="alice", authenticated=True, scopes={"tickets:read"})
        bob = Principal(subject="bob", authenticated=True)

        with acting_as(alice):
            done = await Runner.run(agent, "call read_ticket")
            print(f"alice -> read_ticket: {done.final_output}")
        with acting_as(bob):
            done = await Runner.run(agent, "call read_ticket")
            print(f"bob -> read_ticket: {done.final_output.split(' the user')[0]}")

        def ask_user(request: ConfirmationRequest) -> bool:
            print(f"confirm {request.tool}? no")
            return False

        with acting_as(alice), agent_run(confirm=ask_user):
            done = await Runner.run(agent, "call read_ticket, send_email")
            code = done.final_output.split(" / ")[1].split("]")[0] + "]"
            print(f"alice -> send_email: {code}")

        with acting_as(alice):
            try:
                await Runner.run(agent, "call payroll")
                print("answer copying the payroll: NOT tripped")
            except OutputGuardrailTripwireTriggered as tripped:
                info = tripped.guardrail_result.output.output_info
                print(f"answer copying the payroll: tripped {info['invariant']}")
            key = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ9z"
            try:
                await Runner.run(agent, f"my key is {key}, why does it fail?")
                print("prompt with a credential: NOT tripped")
            except InputGuardrailTripwireTriggered as tripped:
                info = tripped.guardrail_result.output.output_info
                print(f"prompt with a credential: tripped {info['rule_ids']}")
        await client.close()

    try:
        asyncio.run(scenario())
    finally:
        server.shutdown()
        server.server_close()
    denied = sorted({e.reason for e in sink.events if e.decision == "deny"})
    print(f"audit denials: {', '.join(denied)}")


if __name__ == "__main__":
    main()
