"""The self-contained demo behind ``aiinvariants demo`` and ``make demo``.

It runs on the embedded defaults (``Policy()``), needs no network and no
keys: three principals call functions guarded by scopes, every decision goes
to an Ed25519-signed, hash-chained JSONL audit log, and at the end the chain
is verified, then tampered with and verified again.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from aiinvariants.audit import JSONLSink, MemorySink, verify_chain
from aiinvariants.errors import InvariantViolation, ScopeDenied
from aiinvariants.guard import Guard
from aiinvariants.policy import Policy
from aiinvariants.principal import (
    ANONYMOUS,
    Principal,
    PrincipalExecutor,
    acting_as,
    carry_principal,
    current_principal,
)
from aiinvariants.scopes import all_of

__all__ = ["run_demo"]

PRINCIPALS: tuple[tuple[str, Principal], ...] = (
    (
        "employee",
        Principal(
            subject="alice",
            authenticated=True,
            issuer="https://login.example.com",
            scopes=frozenset({"kb:read", "tickets:read", "crm:read", "reports:export"}),
            groups=frozenset({"employees"}),
            tenant="example",
            clearance="internal",
        ),
    ),
    (
        "contractor",
        Principal(
            subject="bob",
            authenticated=True,
            issuer="https://login.example.com",
            scopes=frozenset({"kb:read", "tickets:read"}),
            groups=frozenset({"contractors"}),
            tenant="example",
            clearance="public",
        ),
    ),
    ("anonymous", ANONYMOUS),
)


@dataclass(frozen=True)
class _Row:
    label: str
    rule: str
    call: Callable[[], Any]


def _scenario(guard: Guard) -> list[_Row]:
    """The guarded functions of a small support assistant."""

    @guard.requires_authentication(resource="kb.search")
    def search_kb(query: str) -> list[str]:
        return [f"article about {query}"]

    @guard.enforce_user_scope("tickets:read", resource="tickets.read")
    def read_ticket(ticket_id: int) -> str:
        return f"ticket {ticket_id} for {current_principal().subject}"

    @guard.enforce_user_scope("crm:read", resource="crm.read_customer")
    def read_customer(customer_id: int) -> dict[str, int]:
        return {"id": customer_id}

    @guard.enforce_user_scope(
        all_of("orders:refund") | all_of("finance:admin"), resource="orders.refund"
    )
    def refund(order_id: int) -> str:
        return f"refunded {order_id}"

    @guard.enforce_user_scope(
        "crm:read",
        any_of=("reports:export", "reports:admin"),
        resource="reports.export",
    )
    async def export_report(name: str) -> str:
        await asyncio.sleep(0)
        return f"report {name}"

    @guard.enforce_user_scope("tickets:read", resource="tickets.stream")
    def stream_tickets() -> Iterator[int]:
        yield from range(3)

    @guard.enforce_user_scope("crm:read", resource="crm.stream")
    async def stream_customers() -> AsyncIterator[int]:
        for i in range(2):
            yield i

    async def consume_async() -> list[int]:
        return [item async for item in stream_customers()]

    def in_thread_pool() -> str:
        # Thread pools do not copy the principal; PrincipalExecutor does.
        with PrincipalExecutor(max_workers=2) as pool:
            return pool.submit(read_ticket, 7).result()

    def carried() -> str:
        return carry_principal(read_ticket)(8)

    return [
        _Row("search the knowledge base", "authenticated", lambda: search_kb("vpn")),
        _Row("read a ticket", str(read_ticket.rule), lambda: read_ticket(42)),
        _Row(
            "read a customer record", str(read_customer.rule), lambda: read_customer(1)
        ),
        _Row("refund an order", str(refund.rule), lambda: refund(99)),
        _Row(
            "export a report (async)",
            str(export_report.rule),
            lambda: asyncio.run(export_report("q3")),
        ),
        _Row(
            "stream tickets (generator)",
            str(stream_tickets.rule),
            lambda: list(stream_tickets()),
        ),
        _Row(
            "stream customers (async gen)",
            str(stream_customers.rule),
            lambda: asyncio.run(consume_async()),
        ),
        _Row("read a ticket in a thread pool", "tickets:read", in_thread_pool),
        _Row("carry_principal into a thread", "tickets:read", carried),
    ]


def _outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ScopeDenied as exc:
        return f"DENY {exc.code}: {' '.join(exc.missing)}"
    except InvariantViolation as exc:
        return f"DENY {exc.code}"
    return "allow"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _token_demo(guard: Guard) -> list[tuple[str, Principal]] | None:
    """Mint tokens with a local key pair and verify them; reject one forgery.

    Returns the principals the verifier produced (the anonymous one
    included), which the rest of the demo acts as; None if anything was off.
    """
    import json
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from aiinvariants.auth import JWTVerifier
    from aiinvariants.errors import TokenInvalid

    issuer, audience = "https://login.example.com", "https://support.example.com/api"
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="demo-1", alg="ES256", use="sig")
    verifier = JWTVerifier(
        issuer=issuer,
        audience=audience,
        algorithms=["ES256"],
        jwks={"keys": [jwk]},
        audit=guard.audit,
    )
    now = int(time.time())

    def mint(who: Principal, signer: Any = key) -> str:
        claims = {
            "iss": issuer,
            "sub": who.subject,
            "aud": audience,
            "iat": now,
            "exp": now + 600,
            "scope": " ".join(sorted(who.scopes)),
            "groups": sorted(who.groups),
            "tid": who.tenant,
        }
        return jwt.encode(
            claims,
            signer,
            algorithm="ES256",
            headers={"kid": "demo-1", "typ": "at+jwt"},
        )

    print("tokens: a local ES256 key pair, its JWKS pinned in a JWTVerifier;")
    print("the calls below act as the principals the verifier returns")
    ok = True
    principals: list[tuple[str, Principal]] = []
    for role, who in PRINCIPALS:
        if not who.authenticated:
            principals.append((role, who))
            continue
        verified = verifier.verify(mint(who))
        same = verified.subject == who.subject and verified.scopes == who.scopes
        ok = ok and same
        principals.append((role, verified))
        print(
            f"  {role:<10} token verified -> subject {verified.subject}, "
            f"scopes {' '.join(sorted(verified.scopes))}"
        )
    forger = ec.generate_private_key(ec.SECP256R1())
    admin = Principal(subject="mallory", authenticated=True, scopes={"finance:admin"})
    try:
        verifier.verify(mint(admin, signer=forger))
    except TokenInvalid as exc:
        print(f"  forged     token for 'mallory' (finance:admin) -> DENY {exc.code}")
    else:  # pragma: no cover - would be a verifier bug
        print("  forged     token ACCEPTED")
        ok = False
    print()
    return principals if ok else None


def run_demo(*, out: Path | None = None) -> int:
    """Run the demo, print what happens, return the process exit code."""
    if out is None:
        folder = Path(tempfile.mkdtemp(prefix="aiinvariants-demo-"))
    else:
        folder = out
        folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "audit.jsonl"
    log_path.unlink(missing_ok=True)
    key = Ed25519PrivateKey.generate()
    public_pem = key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "audit-public-key.pem").write_bytes(public_pem)

    policy = Policy(app="demo-support-assistant")
    memory = MemorySink()
    guard = Guard(policy, sinks=[JSONLSink(log_path, signing_key=key), memory])
    print("aiinvariants demo: a support assistant on the embedded default policy")
    print(f"policy {policy.hash}\n")
    print("principals:")
    for role, who in PRINCIPALS:
        scopes = " ".join(sorted(who.scopes)) or "-"
        print(f"  {role:<10} {who.subject:<9} scopes: {scopes}")
    print()
    verified = _token_demo(guard)
    actors = PRINCIPALS if verified is None else tuple(verified)

    with guard:
        scenario = _scenario(guard)
        header = ["call", "needs", *(role for role, _ in actors)]
        rows = [header]
        for row in scenario:
            cells = [row.label, row.rule]
            for _, who in actors:
                with acting_as(who):
                    cells.append(_outcome(row.call))
            rows.append(cells)
        print(_table(rows))

    events = memory.events
    denied = sum(1 for event in events if event.decision == "deny")
    print(
        f"\naudit: {len(events)} decisions ({denied} denied) written to {log_path}, "
        "each line hash-chained and Ed25519-signed"
    )
    report = verify_chain(log_path, public_key=key.public_key())
    print(
        f"verify_chain: {'ok' if report.ok else 'BROKEN'} - {report.lines} lines, "
        f"last hash {report.last_hash}"
    )

    tampered = folder / "audit-tampered.jsonl"
    lines = log_path.read_bytes().splitlines(keepends=True)
    # Rewrite one recorded denial into an allow, as someone covering their
    # tracks would.
    target = next(i for i, line in enumerate(lines) if b'"deny"' in line)
    lines[target] = lines[target].replace(b'"deny"', b'"allow"', 1)
    tampered.write_bytes(b"".join(lines))
    bad = verify_chain(tampered, public_key=key.public_key())
    print(
        f"tampered copy (deny rewritten to allow at line {target + 1}): "
        f"{'ok' if bad.ok else 'BROKEN'} - first bad line {bad.first_bad_line} "
        f"({bad.reason})"
    )
    print(
        f"\ncheck it yourself: aiinvariants audit verify {log_path} "
        f"--public-key {folder / 'audit-public-key.pem'}"
    )
    return 0 if report.ok and not bad.ok and verified is not None else 1
