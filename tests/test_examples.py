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
    "fastmcp_server.py": [
        "registration: open_floodgate refused (life_safety is forbidden)",
        "alice -> read_ticket: ticket T-7, read for alice",
        "bob -> read_ticket: refused (HTTP 403 insufficient_scope)",
        "alice -> send_reply: error: [I8/output_blocked]",
        "alice -> open_floodgate: error: [I3/tool_unknown]",
        "bob sees: ['search_kb', 'send_reply']",
        "token for another server: HTTP 401",
    ],
    "streaming_chat.py": [
        "1. 'Sure, write to [REDACTED] and we will help.'",
        "2. 'My instructions carry the marker ' then blocked (output_blocked)",
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
    "request_handlers.py": [
        "alice: 2 tickets",
        "bob: denied (scope_missing)",
        "anonymous: denied (authentication_required)",
        "req-alice",
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
