"""The public surface: complete, sorted, nothing internal, no heavy imports."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import aiinvariants

# Every name of DESIGN.md's public API contract.
CONTRACT = {
    "aiinvariants": [
        "Principal", "ANONYMOUS", "acting_as", "current_principal",
        "enforce_user_scope", "requires_authentication",
        "Policy", "load_policy", "Guard",
        "InvariantViolation", "AuthenticationRequired", "ScopeDenied",
        "AccessDenied", "ToolForbidden", "ModelDenied", "RegionDenied",
        "OutputBlocked", "UseCaseNotApproved", "TokenInvalid", "PolicyError",
    ],
    "aiinvariants.audit": ["AuditLog", "verify_chain"],
    "aiinvariants.auth": ["JWTVerifier", "TokenExchanger"],
    "aiinvariants.testing": ["assert_holds_with_probability"],
}  # fmt: skip

# The public modules: everything else is _private and free to change. A new
# public module is a decision (docs/architecture.md says why each is public).
SURFACE = {
    "aiinvariants": "the core: Guard, Policy, Principal, decorators, errors",
    "aiinvariants.audit": "the audit log, sinks and chain verification",
    "aiinvariants.audit.otel": "OpenTelemetry export (the otel extra)",
    "aiinvariants.auth": "token verification, exchange and metadata",
    "aiinvariants.filters": "the output filters and pipeline",
    "aiinvariants.filters.classifiers": "hosted content classifiers (httpx)",
    "aiinvariants.llm": "model and region decisions (I4, I5, I7)",
    "aiinvariants.policy": "policy sections, for policies built in code",
    "aiinvariants.resources": "the MCP resource and prompt decision",
    "aiinvariants.retrieval": "document metadata keys and the authorizer",
    "aiinvariants.taint": "agent runs: untrusted content and provenance",
    "aiinvariants.testing": "asserting invariants in tests",
    "aiinvariants.testing.strategies": "hypothesis strategies (hypothesis)",
    "aiinvariants.tools": "the one tool decision, for integration authors",
}
INTEGRATIONS = {
    "anthropic", "asgi", "bedrock", "cedar", "fastapi", "fastmcp", "langchain",
    "langchain_chat", "langchain_tools", "langgraph", "llamaindex", "mcp",
    "openai", "openai_agents", "qdrant",
}  # fmt: skip


def test_the_public_modules_are_exactly_the_surface() -> None:
    found = {"aiinvariants"} | {
        info.name
        for info in pkgutil.walk_packages(aiinvariants.__path__, "aiinvariants.")
        if not any(part.startswith("_") for part in info.name.split("."))
    }
    expected = set(SURFACE) | {"aiinvariants.integrations"}
    expected |= {f"aiinvariants.integrations.{name}" for name in INTEGRATIONS}
    assert found == expected


OPTIONAL = [
    "langchain",
    "langchain_core",
    "llama_index",
    "mcp",
    "openai",
    "anthropic",
    "boto3",
    "botocore",
    "starlette",
    "fastapi",
    "cedarpy",
    "hypothesis",
    "pytest",
    "yaml",
    "opentelemetry",
]


def public_modules() -> list[ModuleType]:
    modules = [aiinvariants]
    for info in pkgutil.walk_packages(aiinvariants.__path__, "aiinvariants."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if info.name.startswith("aiinvariants.integrations."):
            continue  # each needs its framework; tested in tests/integrations
        modules.append(importlib.import_module(info.name))
    return modules


def isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


@pytest.mark.parametrize(("module", "names"), sorted(CONTRACT.items()))
def test_contract_names_are_exported(module: str, names: list[str]) -> None:
    mod = importlib.import_module(module)
    for name in names:
        assert name in mod.__all__, f"{module}.{name} missing from __all__"
        assert getattr(mod, name) is not None


@pytest.mark.parametrize("module", public_modules(), ids=lambda m: m.__name__)
def test_all_is_sorted_complete_and_resolvable(module: ModuleType) -> None:
    exported = module.__all__
    assert exported == sorted(exported, key=isort_key)
    assert len(set(exported)) == len(exported)
    for name in exported:
        obj = getattr(module, name)
        origin = getattr(obj, "__module__", "") or ""
        assert "._internal" not in origin, f"{name} leaks from {origin}"
        assert not name.startswith("_")


def test_core_reexports_every_public_name_it_defines() -> None:
    for name, obj in vars(aiinvariants).items():
        if name.startswith("_") or isinstance(obj, ModuleType):
            continue
        if name in {"annotations"}:
            continue
        assert name in aiinvariants.__all__, f"aiinvariants.{name} is not in __all__"


def test_core_stays_small() -> None:
    # The 20 names of the contract, the errors and warnings one catches, and
    # the principal and scope helpers.
    assert len(aiinvariants.__all__) <= 32


@pytest.mark.parametrize(
    "module",
    ["aiinvariants", "aiinvariants.audit", "aiinvariants.filters", "aiinvariants.auth"],
)
def test_import_loads_no_optional_framework(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"print('\\n'.join(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
