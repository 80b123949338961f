"""Cost of inspecting a whole outgoing request for the user's token (I4).

``PassthroughGuard`` reads every header, the URL and the body (decoded in
the common encodings) before httpx sends anything. Measured on httpx's own
in-process ``MockTransport`` so the network does not hide the cost; the
ratio is to the same request without the hook.
"""

from __future__ import annotations

import json

import httpx

from aiinvariants import Principal, acting_as
from aiinvariants.auth import PassthroughGuard

from ._harness import compare, print_table

URL = "https://billing.example.test/v1/invoices"


def run() -> None:
    user = Principal(
        subject="alice",
        authenticated=True,
        token="eyJhbGciOiJSUzI1NiJ9." + "x" * 600 + ".sig",  # type: ignore[arg-type]
    )
    guard = PassthroughGuard(audiences={"https://billing.example.test": URL})
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    plain = httpx.Client(transport=transport)
    hooked = httpx.Client(transport=transport, event_hooks={"request": [guard]})
    bodies = {
        "1 KB JSON": json.dumps({"text": "a b " * 250}).encode(),
        "100 KB JSON": json.dumps({"text": "a b " * 25_000}).encode(),
        "1 MB text": b"lorem ipsum " * 87_000,
    }
    with acting_as(user):
        for label, body in bodies.items():
            number = 2_000 if len(body) < 10_000 else 40
            results = compare(
                {
                    "httpx POST, no hook (baseline)": lambda b=body: plain.post(
                        URL, content=b, headers={"X-Request": "1"}
                    ),
                    "httpx POST, PassthroughGuard": lambda b=body: hooked.post(
                        URL, content=b, headers={"X-Request": "1"}
                    ),
                },
                baseline="httpx POST, no hook (baseline)",
                number=number,
                repeat=5,
            )
            print_table(f"PassthroughGuard, {label} body", results)
    plain.close()
    hooked.close()
