"""Cost of the one strict JSON parser (#18) next to ``json.loads``.

An LLM request body the guard reads (chat with tools, a few KiB; a long
conversation, ~200 KiB) and a JWT payload, parsed three ways side by side:
plain ``json.loads``, ``json.loads`` with a duplicate-key hook (what the
LLM wire check did before), and :func:`strict_json.loads` (duplicates,
NaN/overflow, surrogates, depth and size).
"""

from __future__ import annotations

import json
from typing import Any

from aiinvariants._internal import strict_json

from ._harness import compare, print_table


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate")
        out[key] = value
    return out


def _chat(turns: int) -> bytes:
    tool = {
        "type": "function",
        "function": {
            "name": "search_kb",
            "description": "Search the knowledge base",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "k": {"type": "integer"}},
                "required": ["query"],
            },
        },
    }
    messages = [
        {"role": "user" if n % 2 else "assistant", "content": f"message {n} " * 20}
        for n in range(turns)
    ]
    body = {
        "model": "gpt-4.1",
        "messages": messages,
        "tools": [tool] * 4,
        "temperature": 0.2,
        "max_tokens": 512,
        "store": False,
    }
    return json.dumps(body).encode()


def run() -> None:
    payload = json.dumps(
        {"iss": "https://login.example.test", "sub": "alice", "exp": 1_900_000_000}
        | {"aud": "https://api.example.test", "scope": "a b c", "groups": ["x"]}
    ).encode()
    for label, data, number in (
        ("JWT payload (~150 B)", payload, 20_000),
        ("chat request (~3 KiB)", _chat(6), 5_000),
        ("chat request (~200 KiB)", _chat(600), 40),
    ):
        results = compare(
            {
                "json.loads": lambda d=data: json.loads(d),
                "json.loads + duplicate hook (before)": lambda d=data: json.loads(
                    d, object_pairs_hook=_no_duplicates
                ),
                "strict_json.loads": lambda d=data: strict_json.loads(d),
            },
            baseline="json.loads + duplicate hook (before)",
            number=number,
            repeat=9,
        )
        print_table(f"strict JSON, {label} ({len(data)} bytes)", results)
