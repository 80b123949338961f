"""Overhead of @enforce_user_scope per call (issue #2)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiinvariants import Guard, Principal, acting_as
from aiinvariants.audit import JSONLSink, MemorySink

from ._harness import compare, print_table


def run() -> None:
    alice = Principal(
        subject="alice", authenticated=True, scopes=frozenset({"crm:read", "kb:read"})
    )

    def bare(customer: int) -> int:
        return customer

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        guards = {
            "no sink": Guard(),
            "memory sink": Guard(sinks=[MemorySink(capacity=1000)]),
            "jsonl sink": Guard(sinks=[JSONLSink(folder / "plain.jsonl")]),
            "jsonl sink, Ed25519-signed": Guard(
                sinks=[
                    JSONLSink(
                        folder / "signed.jsonl",
                        signing_key=Ed25519PrivateKey.generate(),
                    )
                ]
            ),
        }
        cases = {"bare call": lambda: bare(1)}
        for label, guard in guards.items():
            guarded = guard.enforce_user_scope("crm:read")(bare)
            cases[f"@enforce_user_scope, {label}"] = lambda g=guarded: g(1)
        with acting_as(alice):
            results = compare(cases, baseline="bare call", number=5_000, repeat=9)
        for guard in guards.values():
            guard.close()
    print_table("@enforce_user_scope overhead per call (allowed call)", results)
    bare_ns = results[0].per_call_ns
    for r in results[1:]:
        print(
            f"  added by the guard, {r.name.split(', ', 1)[1]}: "
            f"{(r.per_call_ns - bare_ns) / 1e3:.2f} us per call"
        )
