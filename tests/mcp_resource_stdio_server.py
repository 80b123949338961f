"""The resources-and-prompts server of ``mcp_resource_support`` over stdio.

Environment: ``TEST_JWKS``, ``TEST_ISSUER``, ``TEST_RESOURCE`` and optionally
``MCP_ACCESS_TOKEN`` (the stdio identity; without it every guarded resource
and prompt must fail closed).
"""

from __future__ import annotations

import json
import os
from typing import Any

from mcp_resource_support import build_resource_server


class _Issuer:
    """What ``build_resource_server`` reads of the authorization server."""

    issuer = os.environ["TEST_ISSUER"]

    def jwks(self) -> dict[str, Any]:
        return dict(json.loads(os.environ["TEST_JWKS"]))


def main() -> None:
    served = build_resource_server(_Issuer(), os.environ["TEST_RESOURCE"])  # type: ignore[arg-type]
    if os.environ.get("MCP_ACCESS_TOKEN"):
        served.mcp_guard.stdio_identity_from_env("MCP_ACCESS_TOKEN")
    served.server.run("stdio")


if __name__ == "__main__":
    main()
