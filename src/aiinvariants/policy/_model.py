"""The :class:`Policy` model, its hash, and :func:`load_policy`."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from aiinvariants._errors import PolicyError
from aiinvariants._internal import policy_files as _pf
from aiinvariants._internal import policy_types as _pt
from aiinvariants._internal.policy_types import (
    DEFAULT_CLASSIFICATIONS,
    Classifications,
    Frozen,
    Name,
    Text,
)
from aiinvariants._internal.resource_uris import parse_key
from aiinvariants.policy._audit_sections import _SINK_KINDS, AuditPolicy
from aiinvariants.policy._resources import PromptPolicy, ResourceKey, ResourcePolicy
from aiinvariants.policy._sections import (
    _CLASSIFIER_KINDS,
    CapabilityPolicy,
    ClearancePolicy,
    DataUsePolicy,
    Exposure,
    IdentityPolicy,
    ModelPolicy,
    OutputPolicy,
    RegionPolicy,
    ToolPolicy,
    UseCase,
    _empty_mapping,
    _Section,
)

__all__ = [
    "Policy",
    "load_policy",
]


class Policy(_Section):
    """The invariants of one application. ``Policy()`` is valid and strict.

    Attributes:
        version: the policy format version; only 1 exists.
        app: the application's name, carried by audit events.
        exposure: ``internal`` (default): authenticated users only;
            ``public``: anonymous users reach it and see only public data.
        classifications: the labels, lowest first; the first is ``public``.
        clearance: how a principal's clearance is derived.
        identity: the trusted identity provider; None when the app verifies
            identities some other way.
        models: allowed and denied model families.
        regions: allowed inference regions.
        data_use: provider data-use opt-out.
        capabilities: forbidden and confirmation-needing capabilities.
        tools: tool name -> what it needs and touches.
        resources: resource URI or URI template -> what reading it needs
            (MCP resources; see :mod:`aiinvariants.resources`).
        prompts: prompt name -> what getting it needs (MCP prompts).
        outputs: the output filters.
        use_cases: use-case name -> declaration and approval.
        audit: audit sinks and their failure mode.

    Every label used (clearance maps, ``default_authenticated``, tool data)
    must be one of ``classifications``; every problem is reported at once.
    """

    version: Literal[1] = 1
    app: Annotated[Text, Field(max_length=128)] = "app"
    exposure: Exposure = "internal"
    classifications: Classifications = DEFAULT_CLASSIFICATIONS
    clearance: ClearancePolicy = Field(
        default_factory=ClearancePolicy, validate_default=True
    )
    identity: IdentityPolicy | None = None
    models: ModelPolicy = Field(default_factory=ModelPolicy)
    regions: RegionPolicy = Field(default_factory=RegionPolicy)
    data_use: DataUsePolicy = Field(default_factory=DataUsePolicy)
    capabilities: CapabilityPolicy = Field(default_factory=CapabilityPolicy)
    tools: Annotated[dict[Name, ToolPolicy], Frozen] = _empty_mapping()
    resources: Annotated[dict[ResourceKey, ResourcePolicy], Frozen] = _empty_mapping()
    prompts: Annotated[dict[Name, PromptPolicy], Frozen] = _empty_mapping()
    outputs: OutputPolicy = Field(default_factory=OutputPolicy)
    use_cases: Annotated[dict[Name, UseCase], Frozen] = _empty_mapping()
    audit: AuditPolicy = Field(default_factory=AuditPolicy)

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_the_integer_1(cls, value: object) -> object:
        # Literal[1] alone takes True and 1.0 (they equal 1): no coercion.
        if type(value) is not int:
            raise ValueError("version must be the integer 1")
        return value

    @field_validator("clearance")
    @classmethod
    def _clearance_labels(
        cls, value: ClearancePolicy, info: ValidationInfo
    ) -> ClearancePolicy:
        labels: tuple[str, ...] | None = info.data.get("classifications")
        if labels is None:  # already reported
            return value
        used: list[tuple[tuple[str, ...], str]] = [
            (("default_authenticated",), value.default_authenticated)
        ]
        used += [(("groups", key), label) for key, label in value.groups.items()]
        used += [(("scopes", key), label) for key, label in value.scopes.items()]
        _pt.check_labels_known("clearance", labels, used)
        return value._bound(labels)

    @field_validator("tools")
    @classmethod
    def _tool_labels(
        cls, value: dict[str, ToolPolicy], info: ValidationInfo
    ) -> dict[str, ToolPolicy]:
        labels: tuple[str, ...] | None = info.data.get("classifications")
        if labels is not None:
            used = [((name, "data"), tool.data) for name, tool in value.items()]
            _pt.check_labels_known("tools", labels, used)
        return value

    @field_validator("resources", "prompts")
    @classmethod
    def _entry_labels(
        cls, value: dict[str, ResourcePolicy], info: ValidationInfo
    ) -> dict[str, ResourcePolicy]:
        labels: tuple[str, ...] | None = info.data.get("classifications")
        section = info.field_name or "resources"
        if labels is not None:
            used = [((key, "data"), entry.data) for key, entry in value.items()]
            _pt.check_labels_known(section, labels, used)
        if section == "resources":
            first: dict[str, str] = {}
            problems: list[tuple[tuple[str | int, ...], str]] = []
            for key in value:
                parsed = parse_key(key)
                canon = parsed if isinstance(parsed, str) else parsed.key
                if canon in first:
                    problems.append(((key,), "names the same resource as another key"))
                first.setdefault(canon, key)
            _pt.raise_errors(section, problems)
        return value

    @cached_property
    def scopes_supported(self) -> tuple[str, ...]:
        """Every scope the policy names (tools, resources, prompts), sorted.

        What a protected resource lists as ``scopes_supported`` in its RFC
        9728 metadata and a 401 challenge's ``scope=``.
        """
        found: set[str] = set(self.clearance.scopes)
        for entries in (self.tools, self.resources, self.prompts):
            for entry in entries.values():
                found.update(entry.scopes)
                found.update(entry.any_scopes)
        return tuple(sorted(found))

    @property
    def public_label(self) -> str:
        """The lowest label: what an anonymous user may reach."""
        return self.classifications[0]

    @property
    def highest_label(self) -> str:
        """The highest label; undeclared data is treated as this (fail closed)."""
        return self.classifications[-1]

    def rank(self, label: str) -> int:
        """The position of ``label``, 0 for the public label.

        Raises:
            PolicyError: ``label`` is not one of the classifications.
        """
        try:
            return self.classifications.index(label)
        except ValueError:
            got = f" (got {label!r})" if _pt.is_label(label) else ""
            raise PolicyError(_pt.unknown_label(self.classifications) + got) from None

    def canonical_json(self) -> str:
        """The policy as canonical JSON: every field, sorted keys, no spaces.

        Defaults are included, so a file that spells them out and one that
        omits them give the same text; so do YAML, TOML and JSON files with
        the same content in any key order.
        """
        return json.dumps(
            self.model_dump(mode="json"),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )

    @cached_property
    def hash(self) -> str:
        """``"sha256:<64 hex>"`` of :meth:`canonical_json` as UTF-8; cached."""
        digest = hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
        return f"sha256:{digest}"

    def insecure_settings(self) -> tuple[str, ...]:
        """Field paths of the settings that weaken a check the defaults make.

        Loading such a policy is not an error; a guard warns
        (``InsecureUsageWarning``) and audits each one once, and
        ``aiinvariants verify`` reports each (AIV011). The rules are the
        small functions in ``_WEAKENING_RULES``.
        """
        return tuple(path for rule in _WEAKENING_RULES for path in rule(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Self:
        """Validate a mapping (e.g. parsed from a file) into a Policy.

        Args:
            data: the policy as plain data.
            source: where the data came from, named in errors.

        Raises:
            PolicyError: ``data`` is not a valid policy; ``errors`` holds one
                ``(field_path, message)`` per problem, never an input value.
        """
        if not isinstance(data, Mapping):
            raise PolicyError(
                f"the top level must be a mapping, not {type(data).__name__}",
                file=source,
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            errors = _pf.validation_errors(
                exc, union_tags=(*_CLASSIFIER_KINDS, *_SINK_KINDS)
            )
        # Raised outside the except block, so nothing is chained: pydantic's
        # own error names mapping keys, and a key can be a URL with a
        # password in it (regions.declared). ``errors`` holds what it said.
        # The label checks run only on sections that parsed: report the
        # labels of the others too, so one error never hides another.
        seen = {path for path, _ in errors}
        errors += [e for e in _raw_label_errors(data) if e[0] not in seen]
        count = f"{len(errors)} problem{'' if len(errors) == 1 else 's'}"
        raise PolicyError(f"invalid policy ({count})", file=source, errors=errors)

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self:
        """A copy; with ``update``, a new policy validated like any other.

        pydantic's ``model_copy(update=...)`` skips validation; a policy
        must never hold a value its validators would refuse, nor keep a
        cached hash of other content.

        Raises:
            PolicyError: ``update`` makes the policy invalid.
        """
        if not update:
            return super().model_copy(deep=deep)
        data = {name: getattr(self, name) for name in type(self).model_fields}
        data.update(update)
        return self.from_dict(data)


# -- settings that weaken a default check ---------------------------------------------

#: Thresholds past which a filter misses what the defaults catch.
MAX_SYSTEM_PROMPT_THRESHOLD: Final = 0.8
MAX_MIN_OVERLAP_CHARS: Final = 200
MAX_AZURE_SEVERITY_THRESHOLD: Final = 4


def _weak_identity(policy: Policy) -> list[str]:
    identity = policy.identity
    return ["identity.require_typ"] if identity and not identity.require_typ else []


def _weak_capabilities(policy: Policy) -> list[str]:
    found = []
    if "life_safety" not in policy.capabilities.forbidden:
        found.append("capabilities.forbidden")
    if "sends_external" not in policy.capabilities.confirm:
        found.append("capabilities.confirm")
    if policy.capabilities.injected != "refuse":
        found.append("capabilities.injected")
    return found


def _weak_clearance(policy: Policy) -> list[str]:
    # Every signed-in user reading above public is a grant, not a default.
    if policy.clearance.default_authenticated != policy.public_label:
        return ["clearance.default_authenticated"]
    return []


def _weak_data_use(policy: Policy) -> list[str]:
    return [] if policy.data_use.require_opt_out else ["data_use.require_opt_out"]


def _weak_outputs(policy: Policy) -> list[str]:
    outputs = policy.outputs
    found: list[str] = []
    for name in ("secrets", "system_prompt", "tool_outputs", "competitors", "pii"):
        section = getattr(outputs, name)
        if not section.enabled:
            found.append(f"outputs.{name}.enabled")
        elif section.action == "flag":
            found.append(f"outputs.{name}.action")
    prompt = outputs.system_prompt
    if prompt.enabled and prompt.threshold > MAX_SYSTEM_PROMPT_THRESHOLD:
        found.append("outputs.system_prompt.threshold")
    if prompt.enabled and not prompt.canary:
        found.append("outputs.system_prompt.canary")
    overlap = outputs.tool_outputs
    if overlap.enabled and overlap.min_overlap_chars > MAX_MIN_OVERLAP_CHARS:
        found.append("outputs.tool_outputs.min_overlap_chars")
    for index, classifier in enumerate(outputs.classifiers):
        if classifier.fail == "open":
            found.append(f"outputs.classifiers.{index}.fail")
        threshold = getattr(classifier, "threshold", None)
        if (
            classifier.kind == "azure_content_safety"
            and isinstance(threshold, int)
            and threshold > MAX_AZURE_SEVERITY_THRESHOLD
        ):
            found.append(f"outputs.classifiers.{index}.threshold")
    return found


def _weak_audit(policy: Policy) -> list[str]:
    return (
        ["audit.on_write_failure"]
        if policy.audit.on_write_failure == "fail_open"
        else []
    )


_WEAKENING_RULES: Final[tuple[Callable[[Policy], list[str]], ...]] = (
    _weak_identity,
    _weak_capabilities,
    _weak_clearance,
    _weak_data_use,
    _weak_outputs,
    _weak_audit,
)


def _raw_label_errors(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Unknown ``data`` labels of the raw tools, resources and prompts."""
    labels = data.get("classifications", DEFAULT_CLASSIFICATIONS)
    if not isinstance(labels, list | tuple) or not all(
        _pt.is_label(label) for label in labels
    ):
        return []  # reported as a classifications error
    problem = _pt.unknown_label(labels)
    used: list[tuple[str, object]] = []
    for section in ("tools", "resources", "prompts"):
        entries = data.get(section)
        if isinstance(entries, Mapping):
            for name, entry in entries.items():
                if isinstance(entry, Mapping) and "data" in entry:
                    key = _pf.loc_part(name)
                    used.append((f"{section}.{key}.data", entry["data"]))
    return [
        (path, problem)
        for path, label in used
        if isinstance(label, str) and label not in labels
    ]


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Load and validate a policy file.

    The format follows the suffix: ``.yaml``/``.yml`` (needs the ``yaml``
    extra), ``.toml`` or ``.json``. Files over 1 MiB, duplicate keys and
    YAML anchors, aliases and merge keys are refused.

    Args:
        path: the policy file.

    Returns:
        the validated policy.

    Raises:
        PolicyError: the file is missing, unreadable, too large, malformed
            (with line and column), not a mapping, or not a valid policy
            (with every field path and problem). Input values are never
            echoed.
        MissingIntegrationError: a YAML file, and PyYAML is not installed.
    """
    name, data = _pf.read_policy_file(path)
    return Policy.from_dict(data, source=name)
