"""The policy: one validated, immutable statement of an application's invariants.

A :class:`Policy` says what the guard enforces: who may reach the app
(``exposure``), how data is classified and how a user gets a clearance,
which identity provider is trusted, which models and regions are allowed,
which tools exist and what they need, which output filters run, which
high-risk use cases are approved, and where decisions are recorded.

``Policy()`` with no arguments is a valid, strict policy. A policy is loaded
from YAML, TOML or JSON with :func:`load_policy`, or built from a mapping
with :meth:`Policy.from_dict`; both raise :class:`~aiinvariants.PolicyError`
naming every problem at its field path, and never echo a value from the file.

Every model is frozen and refuses unknown keys; mappings inside a policy are
read-only too. A policy therefore never changes after validation, which is
what makes :attr:`Policy.hash` (carried by every audit event) meaningful::

    Policy
    ├─ clearance     ClearancePolicy     group/scope -> label, resolve()
    ├─ identity      IdentityPolicy      issuer, audience, keys, algorithms
    ├─ models        ModelPolicy         allow / deny globs
    ├─ regions       RegionPolicy        allowed regions, declared endpoints
    ├─ data_use      DataUsePolicy
    ├─ capabilities  CapabilityPolicy    forbidden / needs confirmation
    ├─ tools         {name: ToolPolicy}
    ├─ resources     {uri or template: ResourcePolicy}   (MCP resources)
    ├─ prompts       {name: PromptPolicy}                (MCP prompts)
    ├─ outputs       OutputPolicy        secrets, system_prompt, tool_outputs,
    │                                    competitors, pii, classifiers[]
    ├─ use_cases     {name: UseCase}     Annex III area, Approval
    └─ audit         AuditPolicy         sinks[], on_write_failure
"""

from __future__ import annotations

from aiinvariants.policy._audit_sections import (
    AuditPolicy,
    JsonlSinkConfig,
    LoggingSinkConfig,
    MemorySinkConfig,
    OtelSinkConfig,
    SinkConfig,
)
from aiinvariants.policy._model import Policy, load_policy
from aiinvariants.policy._resources import PromptPolicy, ResourcePolicy
from aiinvariants.policy._sections import (
    CONSEQUENTIAL,
    DEFAULT_CLASSIFICATIONS,
    Action,
    AnnexIII,
    Approval,
    AzureContentSafetyConfig,
    BedrockGuardrailsConfig,
    CapabilityPolicy,
    ClassifierConfig,
    ClearancePolicy,
    CompetitorsOutput,
    ConfirmWhen,
    DataUsePolicy,
    Exposure,
    IdentityPolicy,
    InjectedAction,
    JWSAlgorithm,
    ModelPolicy,
    OpenAICompatibleConfig,
    OpenAIModerationConfig,
    OutputPolicy,
    PIIKind,
    PIIOutput,
    RegionPolicy,
    SecretsOutput,
    SystemPromptOutput,
    ToolOutputsOutput,
    ToolPolicy,
    UseCase,
)

__all__ = [
    "CONSEQUENTIAL",
    "DEFAULT_CLASSIFICATIONS",
    "Action",
    "AnnexIII",
    "Approval",
    "AuditPolicy",
    "AzureContentSafetyConfig",
    "BedrockGuardrailsConfig",
    "CapabilityPolicy",
    "ClassifierConfig",
    "ClearancePolicy",
    "CompetitorsOutput",
    "ConfirmWhen",
    "DataUsePolicy",
    "Exposure",
    "IdentityPolicy",
    "InjectedAction",
    "JWSAlgorithm",
    "JsonlSinkConfig",
    "LoggingSinkConfig",
    "MemorySinkConfig",
    "ModelPolicy",
    "OpenAICompatibleConfig",
    "OpenAIModerationConfig",
    "OtelSinkConfig",
    "OutputPolicy",
    "PIIKind",
    "PIIOutput",
    "Policy",
    "PromptPolicy",
    "RegionPolicy",
    "ResourcePolicy",
    "SecretsOutput",
    "SinkConfig",
    "SystemPromptOutput",
    "ToolOutputsOutput",
    "ToolPolicy",
    "UseCase",
    "load_policy",
]
