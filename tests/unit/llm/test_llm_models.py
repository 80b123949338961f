"""Model-id normalization and the allow/deny decision (I5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinvariants import ModelDenied
from aiinvariants.llm import ModelId, decide_model, normalize_model
from aiinvariants.llm._models import family_words

ALLOW = (
    "gpt-4.1*",
    "gpt-4o*",
    "o4-mini*",
    "claude-*",
    "*anthropic.claude-*",
    "meta-llama/*",
    "llama*",
    "mistral-*",
    "qwen*",
)
DENY = ("deepseek*",)

#: Real-world identifiers of one banned family (DeepSeek), across providers,
#: routers, hubs and local runners.
DEEPSEEK_ALIASES = [
    "deepseek-chat",  # DeepSeek API
    "deepseek-reasoner",  # DeepSeek API
    "DeepSeek-R1",  # Azure AI Foundry / GitHub Models
    "DeepSeek-V3-0324",  # Azure AI Foundry
    "deepseek-ai/DeepSeek-R1",  # Hugging Face, Together, vLLM
    "deepseek-ai/DeepSeek-V3",  # Hugging Face
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",  # distilled into Llama
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",  # distilled into Qwen
    "deepseek/deepseek-r1",  # OpenRouter
    "deepseek/deepseek-chat-v3-0324:free",  # OpenRouter free tier
    "openrouter/deepseek/deepseek-r1",  # LiteLLM router id
    "together_ai/deepseek-ai/DeepSeek-V3",  # LiteLLM -> Together
    "accounts/fireworks/models/deepseek-v3",  # Fireworks
    "deepseek-r1-distill-llama-70b",  # Groq
    "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",  # Cloudflare Workers AI
    "deepseek-r1:14b",  # Ollama
    "deepseek-coder-v2:16b",  # Ollama
    "deepseek.r1-v1:0",  # Amazon Bedrock model id
    "us.deepseek.r1-v1:0",  # Bedrock cross-region inference profile
    "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.deepseek.r1-v1:0",
    "publishers/deepseek-ai/models/deepseek-r1-0528-maas",  # Vertex AI MaaS
    "azureml://registries/azureml-deepseek/models/DeepSeek-R1",  # Azure ML
    "hf.co/unsloth/DeepSeek-R1-GGUF",  # Ollama from Hugging Face
    "deepseek-v3.1",
    "  DEEPSEEK-R1  ",  # case and whitespace
    "Deep-Seek-R1",  # separators inside the family name
]

ALLOWED = [
    "gpt-4.1",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4o-2024-08-06",
    "ft:gpt-4o-mini-2024-07-18:acme::abc123",
    "o4-mini-deep-research",
    "claude-sonnet-4-5",
    "claude-3-5-sonnet@20240620",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "meta-llama/Llama-3.3-70B-Instruct",
    "llama3.1:8b",
    "mistral-large-2411",
    "qwen2.5-coder:7b",
]


def test_at_least_twenty_aliases() -> None:
    assert len(DEEPSEEK_ALIASES) >= 20


@pytest.mark.parametrize("model", DEEPSEEK_ALIASES)
def test_every_alias_of_a_denied_family_is_denied(model: str) -> None:
    with pytest.raises(ModelDenied) as info:
        decide_model(model, allow=("*",), deny=DENY)
    assert info.value.code == "model_denied"
    assert info.value.invariant == "I5"


@pytest.mark.parametrize("model", DEEPSEEK_ALIASES)
def test_aliases_are_denied_by_a_contains_pattern_too(model: str) -> None:
    with pytest.raises(ModelDenied):
        decide_model(model, allow=("*",), deny=("*deepseek*",))


@pytest.mark.parametrize("model", ALLOWED)
def test_allowed_models_are_not_caught_by_the_deny_patterns(model: str) -> None:
    assert decide_model(model, allow=ALLOW, deny=DENY).name


def test_not_in_allow_list() -> None:
    with pytest.raises(ModelDenied) as info:
        decide_model("gemini-2.5-pro", allow=ALLOW, deny=DENY)
    assert info.value.code == "model_not_allowed"


def test_deny_wins_over_allow() -> None:
    with pytest.raises(ModelDenied):
        decide_model("deepseek-r1", allow=("deepseek*",), deny=("deepseek*",))


def test_empty_allow_list_allows_nothing() -> None:
    with pytest.raises(ModelDenied):
        decide_model("gpt-4.1", allow=(), deny=())


@pytest.mark.parametrize("bad", ["", "   ", "x" * 600, "/", None, 42])
def test_unreadable_ids_are_denied(bad: object) -> None:
    with pytest.raises(ModelDenied) as info:
        decide_model(bad, allow=("*",), deny=())  # type: ignore[arg-type]
    assert info.value.code == "model_unknown"


@pytest.mark.parametrize(
    ("raw", "vendor", "name", "profile"),
    [
        (
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "anthropic",
            "claude-3-5-sonnet",
            "us",
        ),
        (
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            "anthropic",
            "claude-sonnet-4",
            "global",
        ),
        ("meta.llama3-70b-instruct-v1:0", "meta", "llama3-70b-instruct", None),
        ("gpt-4.1-2025-04-14", None, "gpt-4.1", None),
        ("deepseek-ai/DeepSeek-R1", "deepseek-ai", "deepseek-r1", None),
        ("claude-3-5-sonnet@20240620", None, "claude-3-5-sonnet", None),
        ("llama3.1:8b", None, "llama3.1", None),
    ],
)
def test_normalization(
    raw: str, vendor: str | None, name: str, profile: str | None
) -> None:
    mid = normalize_model(raw)
    assert (mid.vendor, mid.name, mid.profile) == (vendor, name, profile)


def test_family_words() -> None:
    assert family_words("deepseek*") == "deepseek"
    assert family_words("*deepseek*") == "deepseek"
    assert family_words("gpt-4o-mini") is None
    assert family_words("gpt-4*") is None


def test_short_family_words_do_not_match_inside_other_words() -> None:
    # "phi*" denies the Phi family, not a model whose name merely contains "phi".
    with pytest.raises(ModelDenied):
        decide_model("microsoft/Phi-4-mini-instruct", allow=("*",), deny=("phi*",))
    decide_model("sapphire-7b", allow=("*",), deny=("phi*",))


_decorations = st.sampled_from(
    [
        "{}",
        "{}-v1:0",
        "us.deepseek.{}",
        "eu.deepseek.{}",
        "deepseek-ai/{}",
        "openrouter/deepseek/{}",
        "{}:7b",
        "{}-2025-01-20",
        "{}@001",
        "ft:{}:org::1",
    ]
)


@given(
    base=st.sampled_from(["deepseek-r1", "DeepSeek-V3", "deepseek-coder", "deepseek"]),
    deco=_decorations,
    upper=st.booleans(),
)
def test_decorated_banned_ids_stay_denied(base: str, deco: str, upper: bool) -> None:
    model = deco.format(base)
    model = model.upper() if upper else model
    with pytest.raises(ModelDenied):
        decide_model(model, allow=("*",), deny=DENY)


@given(st.text(min_size=1, max_size=80))
def test_normalize_never_crashes(text: str) -> None:
    outcome: ModelId | str
    try:
        outcome = normalize_model(text)
    except ModelDenied as exc:
        outcome = exc.code
    if isinstance(outcome, str):
        assert outcome == "model_unknown"
    else:
        assert outcome.forms
        assert all(f == f.lower() for f in outcome.forms)
