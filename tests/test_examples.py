"""Every example runs, and prints what its comments promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "quickstart.py": [
        "{'id': 7}",
        'Bearer error="insufficient_scope", scope="crm:read"',
        "allow scopes_held alice",
        "deny scope_missing bob",
    ],
    "statistical_leak_test.py": [
        "invariant NOT shown to hold: violation rate <= 1.0000% at 95% confidence",
        "invariant holds: violation rate <= 1.0000% at 95% confidence",
        "trials 299, violations 0, observed rate 0.0000%, exact upper bound 0.9969%",
    ],
    "mcp_tools.py": [
        "registration: open_floodgate refused (life_safety is forbidden)",
        "alice -> search_kb: 3 articles about vpn",
        "alice -> read_ticket: ticket T-7, read for alice",
        "bob -> read_ticket: refused (HTTP 403 insufficient_scope)",
        "alice -> open_floodgate: error: Unknown tool: open_floodgate",
        "token for another server: rejected (HTTP 401)",
    ],
    "mcp_server.py": [
        "alice sees: ['docs://handbook/{page}', 'docs://hr/{employee}'] ['summarise']",
        "alice reads docs://hr/carol: salary of carol, read for alice",
        "alice reads docs://drafts: refused (resource_unknown)",
        "bob sees: ['docs://handbook/{page}'] ['summarise']",
        "bob reads docs://handbook/vpn: handbook page vpn",
        "bob reads docs://hr/carol: refused (HTTP 403 insufficient_scope)",
        'bob, raw JSON-RPC: 403 Bearer error="insufficient_scope", scope="hr:read"',
        'no token: 401 Bearer scope="hr:read", resource_metadata=',
        "scopes_supported: ['hr:read', 'incidents:write']",
    ],
    "fastmcp_server.py": [
        "registration: open_floodgate refused (life_safety is forbidden)",
        "alice -> read_ticket: ticket T-7, read for alice",
        "bob -> read_ticket: refused (HTTP 403 insufficient_scope)",
        "alice -> send_reply: error: [I8/output_blocked]",
        "alice -> open_floodgate: error: [I3/tool_unknown]",
        "bob sees: ['search_kb', 'send_reply']",
        "token for another server: HTTP 401",
    ],
    "injection_guard.py": [
        "injected payment: refused (injected_argument)",
        "  asked (delegated, from tool.read_file(file_path))",
        "bill payment: sent 98.7 to UK12345678901234567890",
    ],
    "streaming_chat.py": [
        "1. 'Sure, write to [REDACTED] and we will help.'",
        "2. 'My instructions carry the ' then blocked (output_blocked)",
        "3. model denied (I5/model_denied)",
        "4. region denied (I6/region_unknown)",
        "store sent with every request: {False}",
    ],
    "secure_rag.py": [
        "setup: a public app refuses an undeclared corpus (PolicyError)",
        "anonymous /faq: 200 ['handbook', 'hours']",
        "anonymous /ask: 401",
        "bob (employees) /ask: 200 ['handbook', 'hours', 'roadmap']",
        "alice (finance) /ask: 200 ['handbook', 'hours', 'roadmap', 'salaries']",
        "mallory (forged) /ask: 401",
        "audit: I2 anonymous kb-faq returned=2 dropped=0 unlabelled=0 pushdown=True",
    ],
    "llamaindex_rag.py": [
        "anonymous: refused (authentication_required)",
        "bob (employees): ['hours', 'roadmap', 'vpn']",
        "alice (finance): ['hours', 'roadmap', 'salaries', 'vpn']",
        "audit: I2 deny authentication_required anonymous",
        "audit: I1 allow retrieval alice returned=4",
    ],
    "langchain_tools.py": [
        "wrap: open_floodgate refused (life_safety is forbidden)",
        "alice -> search_kb: 3 articles about vpn",
        "alice -> read_ticket: ticket T-7: printer jammed; artifact "
        "{'classification': 'internal', 'reporter': '[REDACTED]'}",
        "bob -> read_ticket: refused (scope_missing)",
        "anonymous -> search_kb: refused (authentication_required)",
        "config alice -> read_ticket: ticket T-8: printer jammed",
        "config 'alice' (a string) -> read_ticket: refused (principal_invalid)",
        "config principal without principal_from_config: refused (PolicyError)",
        "retriever k=1: 1 document",
        "retriever for alice: ['internal', 'public']",
        "retriever.vectorstore: not exposed",
    ],
    "langgraph_agent.py": [
        "declined: interrupt for send_email (private: ['tool.read_ticket'], "
        "untrusted: ['tool.search_kb'])",
        "declined: read_ticket=ok, search_kb=ok, send_email=error, "
        "delete_all_tickets=error; outbox []",
        "approved: read_ticket=ok, search_kb=ok, send_email=ok, "
        "delete_all_tickets=error; outbox ['x@evil.test']",
    ],
    "fastapi_app.py": [
        "alice GET /tickets/T-7: 200 {'id': 'T-7', 'read_for': 'alice'}",
        'bob GET /tickets/T-7: 403 scope_missing [Bearer error="insufficient_scope", '
        'scope="tickets:read"]',
        "anonymous GET /tickets/T-7: 401 authentication_required [Bearer]",
        "mallory (forged) GET /tickets/T-7: 401 bad_signature",
        "anonymous GET /health: 200 {'status': 'ok', 'caller': 'anonymous'}",
        "anonymous GET /whoami: 401 authentication_required",
        "bob GET /whoami: 200 {'subject': 'bob'}",
        "token in the query: 400 token_in_query",
        "OpenAPI: oauth2 authorizationCode scopes ['tickets:read']",
        "startup refused: /export depends on neither auth.user, optional_user nor gate",
    ],
    "request_handlers.py": [
        "alice: 2 tickets",
        "bob: denied (scope_missing)",
        "anonymous: denied (authentication_required)",
        "req-alice",
    ],
    "agents_tools.py": [
        "registration: open_floodgate refused (life_safety is forbidden)",
        "alice -> read_ticket: ticket T-7: printer on fire",
        "bob -> read_ticket: [I1/scope_missing]",
        "confirm send_email? no",
        "alice -> send_email: [I12/tainted_run_needs_confirmation]",
        "answer copying the payroll: tripped I8",
        "prompt with a credential: tripped ['github-pat']",
        "audit denials: capability_forbidden, github-pat, scope_missing, "
        "tainted_run_needs_confirmation, tool-output-copy",
    ],
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for expected in EXPECTED[name]:
        assert expected in proc.stdout
