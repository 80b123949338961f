"""Cost of one audited decision per audit setup (issue #16).

A signed decision used to sign every line (~62 µs); now a signed checkpoint
covers a batch of events, so the per-decision cost is close to the unsigned
one. Measured side by side: no sink, unsigned segment, signed segment with
checkpoints every 1000 events (the default), and signed with a checkpoint
after every event (the old per-line cost, for comparison).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiinvariants import Guard, Principal, acting_as
from aiinvariants.audit import JSONLSink, verify_trail

from ._harness import compare, print_table


def run() -> None:
    alice = Principal(
        subject="alice", authenticated=True, scopes=frozenset({"crm:read"})
    )
    key = Ed25519PrivateKey.generate()

    def bare(customer: int) -> int:
        return customer

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        guards = {
            "no sink": Guard(),
            "jsonl, unsigned": Guard(sinks=[JSONLSink(folder / "u.jsonl")]),
            "jsonl, signed checkpoints every 1000": Guard(
                sinks=[JSONLSink(folder / "s.jsonl", signing_key=key)]
            ),
            "jsonl, signed checkpoint every event": Guard(
                sinks=[
                    JSONLSink(folder / "e.jsonl", signing_key=key, checkpoint_every=1)
                ]
            ),
        }
        cases = {"bare call": lambda: bare(1)}
        for label, guard in guards.items():
            guarded = guard.enforce_user_scope("crm:read")(bare)
            cases[f"decision, {label}"] = lambda g=guarded: g(1)
        with acting_as(alice):
            results = compare(cases, baseline="bare call", number=2_000, repeat=7)
        for guard in guards.values():
            guard.close()
        print_table("audited decision (allowed @enforce_user_scope call)", results)
        none = results[1].per_call_ns
        for r in results[1:]:
            print(
                f"  {r.name}: {r.per_call_ns / 1e3:.2f} us per decision "
                f"({(r.per_call_ns - none) / 1e3:+.2f} us over no sink)"
            )
        import time

        start = time.perf_counter()
        report = verify_trail(folder / "s.jsonl", public_key=key.public_key())
        elapsed = time.perf_counter() - start
        print(
            f"  verify_trail (signed, checkpoints): {report.events / elapsed:,.0f} "
            f"events/s over {report.events} events, ok={report.ok}"
        )


if __name__ == "__main__":
    run()
