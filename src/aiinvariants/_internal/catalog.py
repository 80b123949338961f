"""Reference lists the policy verifier checks patterns against.

Public facts: the region names the cloud providers publish, and model
identifiers as providers and routers spell them. They are samples for
static checks ("does this allow pattern admit a denied family?", "can this
region pattern ever match?"), not an allow-list: enforcement at run time
never depends on them.
"""

from __future__ import annotations

from typing import Final

__all__ = ["AWS_REGIONS", "KNOWN_REGIONS", "MODEL_IDS"]

AWS_REGIONS: Final[tuple[str, ...]] = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "us-gov-east-1",
    "us-gov-west-1", "ca-central-1", "ca-west-1", "mx-central-1",
    "sa-east-1", "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2",
    "eu-west-3", "eu-north-1", "eu-south-1", "eu-south-2", "il-central-1",
    "me-south-1", "me-central-1", "af-south-1", "ap-east-1", "ap-east-2",
    "ap-south-1", "ap-south-2", "ap-northeast-1", "ap-northeast-2",
    "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ap-southeast-5", "ap-southeast-7",
)  # fmt: skip

_AZURE_REGIONS: Final[tuple[str, ...]] = (
    "eastus", "eastus2", "westus", "westus2", "westus3", "centralus",
    "northcentralus", "southcentralus", "westcentralus", "canadacentral",
    "canadaeast", "brazilsouth", "northeurope", "westeurope", "francecentral",
    "francesouth", "germanywestcentral", "germanynorth", "italynorth",
    "norwayeast", "norwaywest", "polandcentral", "spaincentral",
    "swedencentral", "switzerlandnorth", "switzerlandwest", "uksouth",
    "ukwest", "uaenorth", "qatarcentral", "israelcentral", "southafricanorth",
    "centralindia", "southindia", "westindia", "japaneast", "japanwest",
    "koreacentral", "koreasouth", "eastasia", "southeastasia",
    "australiaeast", "australiasoutheast", "australiacentral",
)  # fmt: skip

_GCP_REGIONS: Final[tuple[str, ...]] = (
    "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1",
    "us-west4", "northamerica-northeast1", "southamerica-east1",
    "europe-west1", "europe-west2", "europe-west3", "europe-west4",
    "europe-west6", "europe-west8", "europe-west9", "europe-north1",
    "europe-central2", "europe-southwest1", "me-central1", "me-west1",
    "asia-east1", "asia-northeast1", "asia-northeast3", "asia-south1",
    "asia-southeast1", "australia-southeast1", "global",
)  # fmt: skip

KNOWN_REGIONS: Final[tuple[str, ...]] = AWS_REGIONS + _AZURE_REGIONS + _GCP_REGIONS

MODEL_IDS: Final[tuple[str, ...]] = (
    # OpenAI
    "gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "o3", "o4-mini",
    "openai/gpt-4.1",
    # Anthropic, direct and on Bedrock / Vertex
    "claude-sonnet-4-5", "claude-3-5-haiku-20241022",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "claude-sonnet-4@20250514",
    # Google
    "gemini-2.5-pro", "gemini-2.0-flash", "google/gemini-2.5-flash",
    # Meta
    "meta.llama3-1-70b-instruct-v1:0", "llama-3.3-70b-instruct",
    "meta-llama/llama-4-maverick",
    # Mistral
    "mistral-large-latest", "mistral.mistral-large-2407-v1:0",
    "mistralai/mixtral-8x7b-instruct",
    # Amazon, Cohere, others
    "amazon.nova-pro-v1:0", "amazon.titan-text-express-v1",
    "cohere.command-r-plus-v1:0",
    # DeepSeek, under the names it travels by
    "deepseek-chat", "deepseek-reasoner", "deepseek-r1", "deepseek-v3",
    "deepseek.r1-v1:0", "us.deepseek.r1-v1:0", "deepseek-ai/deepseek-r1",
    "deepseek/deepseek-chat-v3-0324", "accounts/fireworks/models/deepseek-v3",
    "deepseek-r1-distill-llama-70b", "deepseek-r1-distill-qwen-32b",
    # Qwen, Kimi and others
    "qwen2.5-72b-instruct", "qwen/qwen3-235b-a22b", "moonshotai/kimi-k2",
    "x-ai/grok-4",
)  # fmt: skip
