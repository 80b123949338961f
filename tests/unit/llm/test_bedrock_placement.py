"""Where a Bedrock request goes: the region of the URL, declared or in the host."""

from __future__ import annotations

import pytest

from aiinvariants.llm._regions import bedrock_placement

DECLARED = {"https://gateway.example.com": "eu-west-1"}


@pytest.mark.parametrize(
    ("url", "region", "source"),
    [
        (
            "https://bedrock-runtime.eu-central-1.amazonaws.com",
            "eu-central-1",
            "endpoint",
        ),
        (
            "https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
            "endpoint",
        ),
        ("https://bedrock-runtime.eu-west-3.api.aws", "eu-west-3", "endpoint"),
        (
            "https://bedrock-runtime.cn-northwest-1.amazonaws.com.cn",
            "cn-northwest-1",
            "endpoint",
        ),
        (
            "https://vpce-01ab-cd.bedrock-runtime.eu-north-1.vpce.amazonaws.com/model/x",
            "eu-north-1",
            "endpoint",
        ),
        (
            "https://bedrock-agent-runtime.eu-west-1.amazonaws.com",
            "eu-west-1",
            "endpoint",
        ),
        (
            "https://gateway.example.com/bedrock/model/x/converse",
            "eu-west-1",
            "declared",
        ),
        ("https://GATEWAY.example.com:443/x", None, "endpoint"),  # port differs
        ("http://gateway.example.com", None, "endpoint"),  # scheme differs
        ("https://gateway.example.com.evil.test", None, "endpoint"),
        (
            "https://bedrock-runtime.eu-central-1.amazonaws.com.evil.test",
            None,
            "endpoint",
        ),
        (
            "https://evil.test/bedrock-runtime.eu-central-1.amazonaws.com",
            None,
            "endpoint",
        ),
        ("https://api.openai.com", None, "endpoint"),
        ("https://eu.api.openai.com", None, "endpoint"),  # not a Bedrock host
    ],
)
def test_bedrock_placement(url: str, region: str | None, source: str) -> None:
    placement = bedrock_placement(url, DECLARED)
    assert placement.home == region
    assert placement.source == source
