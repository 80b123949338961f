"""Static verification of a policy before it is deployed.

A cloud control policy can be checked before it is applied; so can an app's
invariant policy. :func:`verify_policy` reads a :class:`Policy` and reports
what would make an invariant fail or an enforcement point refuse everything:

=========  ========  ====================================================
rule       level     finding
=========  ========  ====================================================
AIV000     error     the policy does not load (every field problem)
AIV001     error     an enabled tool carries a forbidden capability (I3)
AIV002     error     a public app reaches a non-public tool without
                     authentication (I2)
AIV003     error     a tool touching non-public data declares no scopes (I1)
AIV004     warning   a tool does not declare its data level (treated as the
                     highest label)
AIV005     warning   an allow pattern is unreachable: a deny pattern refuses
                     everything it admits (I5)
AIV006     note      an allow pattern admits models the deny list refuses;
                     deny wins at run time (I5)
AIV007     warning   a region pattern matches no known region, or a declared
                     endpoint's region is not allowed (I6)
AIV008     error     a high-risk use case has no approval (I11)
AIV009     error     a high-risk use case's approval has expired (I11)
AIV010     warning   an approval expires within 30 days (I11)
AIV011     warning   a setting weakens a default check
=========  ========  ====================================================

Wildcard scopes are refused when a policy loads, so they surface as AIV000.
Output formats: text, JSON and SARIF 2.1.0 (for code-scanning dashboards).
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

from aiinvariants._errors import PolicyError
from aiinvariants._internal.catalog import KNOWN_REGIONS, MODEL_IDS
from aiinvariants.policy import Policy, load_policy

__all__ = [
    "RULES",
    "Finding",
    "Level",
    "render_json",
    "render_sarif",
    "render_text",
    "verify_file",
    "verify_policy",
]

Level = Literal["error", "warning", "note"]

#: rule id -> (level, short name, description)
RULES: Final[dict[str, tuple[Level, str, str]]] = {
    "AIV000": ("error", "policy-invalid", "The policy does not load."),
    "AIV001": (
        "error",
        "forbidden-capability-tool",
        "An enabled tool carries a capability the policy forbids.",
    ),
    "AIV002": (
        "error",
        "public-reaches-private",
        "A public app reaches a non-public tool without authentication.",
    ),
    "AIV003": (
        "error",
        "private-tool-without-scopes",
        "A tool touching non-public data declares no scopes.",
    ),
    "AIV004": (
        "warning",
        "undeclared-data-level",
        "A tool does not declare the classification of the data it returns.",
    ),
    "AIV005": (
        "warning",
        "unreachable-model-allow",
        "A model allow pattern is made unreachable by a deny pattern.",
    ),
    "AIV006": (
        "note",
        "allow-admits-denied-family",
        "A model allow pattern admits models the deny list refuses.",
    ),
    "AIV007": (
        "warning",
        "region-not-establishable",
        "A region pattern or declared endpoint can never pass the region check.",
    ),
    "AIV008": (
        "error",
        "high-risk-unapproved",
        "A high-risk use case has no recorded approval.",
    ),
    "AIV009": (
        "error",
        "approval-expired",
        "A high-risk use case's approval has expired.",
    ),
    "AIV010": (
        "warning",
        "approval-expiring",
        "A high-risk use case's approval expires within 30 days.",
    ),
    "AIV011": ("warning", "insecure-setting", "A setting weakens a default check."),
}

_EXPIRY_WARNING: Final = timedelta(days=30)
# Expansions that stand in for a glob's wildcards when testing subsumption.
_SAMPLES: Final = ("", "x", "-1", "abc-2024", "v1:0", "/x")


@dataclass(frozen=True)
class Finding:
    """One problem the verifier found.

    Attributes:
        rule: the rule id, ``AIV001``…
        level: ``error``, ``warning`` or ``note``.
        path: the policy field it is about (``tools.open_floodgate``).
        message: what is wrong and what to do.
    """

    rule: str
    level: Level
    path: str
    message: str


def _finding(rule: str, path: str, message: str) -> Finding:
    return Finding(rule=rule, level=RULES[rule][0], path=path, message=message)


def _expansions(pattern: str) -> Iterable[str]:
    yield pattern.replace("*", "").replace("?", "x")
    for sample in _SAMPLES:
        yield pattern.replace("*", sample).replace("?", "x")


def _covers(deny: str, allow: str) -> bool:
    """True when (as far as samples show) ``deny`` matches all ``allow`` admits."""
    return fnmatch.fnmatchcase(allow, deny) and all(
        fnmatch.fnmatchcase(text, deny) for text in _expansions(allow)
    )


def _tools(policy: Policy) -> list[Finding]:
    found: list[Finding] = []
    forbidden = set(policy.capabilities.forbidden)
    public = policy.public_label
    for name, tool in sorted(policy.tools.items()):
        path = f"tools.{name}"
        if tool.enabled and forbidden & set(tool.capabilities):
            caps = ", ".join(sorted(forbidden & set(tool.capabilities)))
            found.append(
                _finding(
                    "AIV001",
                    path,
                    f"tool {name!r} has forbidden capability {caps}; it is refused "
                    "at registration and at every call: remove it or set "
                    "enabled: false",
                )
            )
        level = tool.data if tool.data is not None else policy.highest_label
        if tool.data is None:
            found.append(
                _finding(
                    "AIV004",
                    f"{path}.data",
                    f"tool {name!r} does not declare its data level; it is "
                    f"treated as {policy.highest_label!r}",
                )
            )
        if level == public:
            continue
        needs_scopes = not (tool.scopes or tool.any_scopes)
        exposure = tool.exposure or policy.exposure
        if exposure == "public" and needs_scopes:
            found.append(
                _finding(
                    "AIV002",
                    path,
                    f"tool {name!r} returns {level!r} data and is reachable by "
                    "anonymous users of this public app: declare scopes or set "
                    "exposure: internal",
                )
            )
        elif needs_scopes:
            found.append(
                _finding(
                    "AIV003",
                    f"{path}.scopes",
                    f"tool {name!r} returns {level!r} data but declares no "
                    "scopes: any authenticated user could call it",
                )
            )
    return found


def _models(policy: Policy) -> list[Finding]:
    found: list[Finding] = []
    allow, deny = policy.models.allow, policy.models.deny
    for index, pattern in enumerate(allow):
        blockers = [d for d in deny if _covers(d, pattern)]
        if blockers:
            found.append(
                _finding(
                    "AIV005",
                    f"models.allow.{index}",
                    f"allow pattern {pattern!r} is unreachable: deny pattern "
                    f"{blockers[0]!r} refuses every model it admits",
                )
            )
            continue
        admitted = [
            model
            for model in MODEL_IDS
            if fnmatch.fnmatchcase(model, pattern)
            and any(fnmatch.fnmatchcase(model, d) for d in deny)
        ]
        if admitted:
            shown = ", ".join(admitted[:3]) + (" …" if len(admitted) > 3 else "")
            found.append(
                _finding(
                    "AIV006",
                    f"models.allow.{index}",
                    f"allow pattern {pattern!r} admits denied models ({shown}); "
                    "deny wins at run time",
                )
            )
    return found


def _regions(policy: Policy) -> list[Finding]:
    found: list[Finding] = []
    allow = policy.regions.allow
    if allow is None:
        return found
    for index, pattern in enumerate(allow):
        if not any(fnmatch.fnmatchcase(region, pattern) for region in KNOWN_REGIONS):
            found.append(
                _finding(
                    "AIV007",
                    f"regions.allow.{index}",
                    f"region pattern {pattern!r} matches no known cloud region; "
                    "no call can be established there",
                )
            )
    for url, region in sorted(policy.regions.declared.items()):
        if not any(fnmatch.fnmatchcase(region, pattern) for pattern in allow):
            found.append(
                _finding(
                    "AIV007",
                    f"regions.declared.{url}",
                    f"endpoint {url} is declared in {region!r}, which no allow "
                    "pattern admits: every call to it will be denied",
                )
            )
    return found


def _use_cases(policy: Policy, today: date) -> list[Finding]:
    found: list[Finding] = []
    for name, case in sorted(policy.use_cases.items()):
        if case.high_risk is None:
            continue
        path = f"use_cases.{name}"
        approval = case.approval
        if approval is None:
            found.append(
                _finding(
                    "AIV008",
                    f"{path}.approval",
                    f"high-risk use case {name!r} ({case.high_risk}) has no "
                    "approval; it is refused at run time",
                )
            )
        elif not approval.is_valid_on(today):
            found.append(
                _finding(
                    "AIV009",
                    f"{path}.approval.expires",
                    f"the approval {approval.reference} of {name!r} expired on "
                    f"{approval.expires.isoformat()}; it is refused at run time",
                )
            )
        elif not approval.is_valid_on(today + _EXPIRY_WARNING):
            found.append(
                _finding(
                    "AIV010",
                    f"{path}.approval.expires",
                    f"the approval {approval.reference} of {name!r} expires on "
                    f"{approval.expires.isoformat()}",
                )
            )
    return found


def verify_policy(policy: Policy, *, today: date | None = None) -> list[Finding]:
    """Every finding for ``policy``, errors first, then by field path.

    Args:
        policy: the policy to check.
        today: the date approvals are checked against; today in UTC by default.
    """
    day = today or datetime.now(UTC).date()
    found = [
        *_tools(policy),
        *_models(policy),
        *_regions(policy),
        *_use_cases(policy, day),
        *(
            _finding("AIV011", setting, f"{setting} weakens a default check")
            for setting in policy.insecure_settings()
        ),
    ]
    order = {"error": 0, "warning": 1, "note": 2}
    return sorted(found, key=lambda f: (order[f.level], f.path, f.rule))


def verify_file(
    path: str | os.PathLike[str], *, today: date | None = None
) -> list[Finding]:
    """Load and verify a policy file; a file that does not load is AIV000."""
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        if not exc.errors:
            return [_finding("AIV000", "", exc.message)]
        return [_finding("AIV000", field, message) for field, message in exc.errors]
    return verify_policy(policy, today=today)


def render_text(findings: Sequence[Finding], *, source: str) -> str:
    """Human-readable report, one finding per line and a summary."""
    if not findings:
        return f"{source}: ok, no findings"
    lines = [
        f"{source}: {f.level} {f.rule} {f.path or '<file>'}: {f.message}"
        for f in findings
    ]
    counts = {
        level: sum(1 for f in findings if f.level == level)
        for level in ("error", "warning", "note")
    }
    lines.append(
        f"{counts['error']} error(s), {counts['warning']} warning(s), "
        f"{counts['note']} note(s)"
    )
    return "\n".join(lines)


def render_json(findings: Sequence[Finding], *, source: str) -> str:
    """``{"source": …, "findings": [{rule, level, path, message}…]}``."""
    return json.dumps(
        {"source": source, "findings": [asdict(f) for f in findings]}, indent=2
    )


def render_sarif(findings: Sequence[Finding], *, source: str) -> str:
    """A SARIF 2.1.0 log with one run, for code-scanning dashboards."""
    from aiinvariants import __version__

    used = sorted({f.rule for f in findings})
    rules: list[dict[str, Any]] = [
        {
            "id": rule,
            "name": RULES[rule][1],
            "shortDescription": {"text": RULES[rule][2]},
            "defaultConfiguration": {"level": RULES[rule][0]},
        }
        for rule in used
    ]
    results = [
        {
            "ruleId": f.rule,
            "ruleIndex": used.index(f.rule),
            "level": f.level,
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": source}},
                    "logicalLocations": [
                        {"fullyQualifiedName": f.path or source, "kind": "member"}
                    ],
                }
            ],
        }
        for f in findings
    ]
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "aiinvariants",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2)
