"""The same policy, enforced at the cloud layer as well.

In-process enforcement covers the calls the application makes; an
organisation-wide control also covers the ones it forgets. These exports
turn a :class:`Policy` into AWS Organizations policies:

- :func:`aws_scp`: a service control policy (IAM policy grammar) that denies
  Amazon Bedrock model invocation outside the allowed regions (I6) and for
  models matching a deny pattern (I5).
- :func:`aws_ai_optout`: an AI services opt-out policy that opts every AWS AI
  service out of using content for service improvement (I7).

Both return plain dicts ready for ``json.dumps``. They are defence in depth,
not a substitute for the guard: an SCP sees the requested region and the
model ARN, not aliases, router prefixes or the region an inference profile
routes to (see ``docs/cloud-export.md``).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any, Final

from aiinvariants._errors import PolicyError
from aiinvariants._internal.catalog import AWS_REGIONS
from aiinvariants.policy import Policy

__all__ = ["BEDROCK_INVOKE_ACTIONS", "SCP_MAX_CHARS", "aws_ai_optout", "aws_scp"]

#: The IAM actions behind Bedrock inference: InvokeModel and Converse
#: authorise as ``bedrock:InvokeModel``; their streaming forms as
#: ``bedrock:InvokeModelWithResponseStream``; batch inference as
#: ``bedrock:CreateModelInvocationJob``.
BEDROCK_INVOKE_ACTIONS: Final[tuple[str, ...]] = (
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
    "bedrock:CreateModelInvocationJob",
)

#: AWS Organizations' size limit for one service control policy document.
SCP_MAX_CHARS: Final = 5120


def _aws_region_patterns(policy: Policy) -> list[str] | None:
    allow = policy.regions.allow
    if allow is None:
        return None
    # Keep the patterns that can match an AWS region; Azure or GCP names
    # (swedencentral, europe-west4) mean nothing to AWS.
    return sorted(
        {p for p in allow if any(fnmatch.fnmatchcase(r, p) for r in AWS_REGIONS)}
    )


def aws_scp(policy: Policy) -> dict[str, Any]:
    """A service control policy enforcing the policy's region and model rules.

    Raises:
        PolicyError: the policy restricts neither regions nor models (an
            empty SCP would suggest a control that does not exist), or the
            document exceeds the SCP size limit.
    """
    statements: list[dict[str, Any]] = []
    regions = _aws_region_patterns(policy)
    if regions is not None:
        if regions:
            condition: dict[str, Any] = {
                "StringNotLike": {"aws:RequestedRegion": regions}
            }
        else:
            # No allowed region is an AWS region: deny Bedrock everywhere.
            condition = {}
        statement: dict[str, Any] = {
            "Sid": "DenyBedrockInferenceOutsideAllowedRegions",
            "Effect": "Deny",
            "Action": list(BEDROCK_INVOKE_ACTIONS),
            "Resource": "*",
        }
        if condition:
            statement["Condition"] = condition
        statements.append(statement)
    if policy.models.deny:
        resources: list[str] = []
        for pattern in policy.models.deny:
            resources.append(f"arn:aws:bedrock:*::foundation-model/{pattern}")
            resources.append(f"arn:aws:bedrock:*:*:inference-profile/{pattern}")
        statements.append(
            {
                "Sid": "DenyBedrockInferenceOnDeniedModels",
                "Effect": "Deny",
                "Action": list(BEDROCK_INVOKE_ACTIONS),
                "Resource": resources,
            }
        )
    if not statements:
        raise PolicyError(
            "the policy restricts neither regions (regions.allow) nor models "
            "(models.deny): there is nothing to export"
        )
    document = {"Version": "2012-10-17", "Statement": statements}
    size = len(json.dumps(document, separators=(",", ":")))
    if size > SCP_MAX_CHARS:
        raise PolicyError(
            f"the service control policy is {size} characters; AWS allows "
            f"{SCP_MAX_CHARS}: use fewer, broader deny patterns"
        )
    return document


def aws_ai_optout() -> dict[str, Any]:
    """An AWS Organizations AI services opt-out policy for every service.

    The ``default`` key applies the opt-out to all AWS AI services, present
    and future; ``@@assign`` makes it the effective value for the accounts
    the policy is attached to.
    """
    return {"services": {"default": {"opt_out_policy": {"@@assign": "optOut"}}}}
