from __future__ import annotations

import fnmatch
import json

import pytest

from aiinvariants import Policy, PolicyError
from aiinvariants._export import (
    BEDROCK_INVOKE_ACTIONS,
    SCP_MAX_CHARS,
    aws_ai_optout,
    aws_scp,
)


def scp_for(**policy: object) -> dict:  # type: ignore[type-arg]
    return aws_scp(Policy.from_dict(policy))


def test_scp_denies_bedrock_outside_allowed_aws_regions_and_denied_models() -> None:
    document = scp_for(
        regions={"allow": ["eu-*", "swedencentral", "europe-west4"]},
        models={"deny": ["*deepseek*", "*grok*"]},
    )
    assert document["Version"] == "2012-10-17"
    region, models = document["Statement"]
    assert region["Effect"] == models["Effect"] == "Deny"
    assert region["Action"] == models["Action"] == list(BEDROCK_INVOKE_ACTIONS)
    assert region["Resource"] == "*"
    # Only patterns that can name an AWS region survive.
    assert region["Condition"] == {"StringNotLike": {"aws:RequestedRegion": ["eu-*"]}}
    assert "arn:aws:bedrock:*::foundation-model/*deepseek*" in models["Resource"]
    assert "arn:aws:bedrock:*:*:inference-profile/*grok*" in models["Resource"]
    for arn in models["Resource"]:
        assert arn.startswith("arn:aws:bedrock:")
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(set(sids)) == len(sids)


def test_resource_patterns_match_real_bedrock_arns() -> None:
    (statement,) = scp_for(models={"deny": ["*deepseek*"]})["Statement"]
    arns = [
        "arn:aws:bedrock:us-west-2::foundation-model/deepseek.r1-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.deepseek.r1-v1:0",
    ]
    for arn in arns:
        assert any(fnmatch.fnmatchcase(arn, p) for p in statement["Resource"])
    allowed = "arn:aws:bedrock:eu-central-1::foundation-model/anthropic.claude-v2"
    assert not any(fnmatch.fnmatchcase(allowed, p) for p in statement["Resource"])


def test_no_aws_region_allowed_means_bedrock_denied_everywhere() -> None:
    (statement,) = scp_for(regions={"allow": ["swedencentral"]})["Statement"]
    assert "Condition" not in statement
    assert statement["Resource"] == "*"


def test_nothing_to_export_is_an_error() -> None:
    with pytest.raises(PolicyError, match="nothing to export"):
        aws_scp(Policy())


def test_size_limit() -> None:
    deny = [f"*family-number-{i:03d}-with-a-long-name*" for i in range(80)]
    with pytest.raises(PolicyError, match=str(SCP_MAX_CHARS)):
        scp_for(models={"deny": deny})


def test_ai_optout_policy_shape() -> None:
    document = aws_ai_optout()
    assert document == {
        "services": {"default": {"opt_out_policy": {"@@assign": "optOut"}}}
    }
    json.dumps(document)
