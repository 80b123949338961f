"""Red team: model ids a deny pattern missed (issue #12 B).

* ``provider:model`` / ``provider@model`` ids (``openai:gpt-4o``, as
  several frameworks write them) were read as the provider's name with a
  version tag, so a deny pattern on the model itself missed them.
* A family's own models published under names without the family word
  (Mistral AI's ``codestral``, ``pixtral``, ``mixtral``…; Qwen's
  ``codeqwen``, where "qwen" is too short for the glued-together search;
  DeepSeek's ``Janus-Pro``) were not in the catalogue.
"""

from __future__ import annotations

import pytest

from aiinvariants import ModelDenied
from aiinvariants.llm._models import decide_model


@pytest.mark.parametrize(
    ("model", "deny"),
    [
        ("openai:gpt-4o", "gpt-4o*"),
        ("openai:gpt-4o-2024-08-06", "gpt-4o"),
        ("azure:gpt-4o", "gpt-4o"),
        ("openai@gpt-4o", "gpt-4o*"),
        ("OpenAI:GPT-4o", "gpt-4o"),
        ("bedrock:anthropic.claude-3-opus-20240229-v1:0", "claude-3-opus*"),
    ],
)
def test_provider_prefixed_ids_are_the_model(model: str, deny: str) -> None:
    with pytest.raises(ModelDenied) as info:
        decide_model(model, allow=("*",), deny=(deny,))
    assert info.value.code == "model_denied"


@pytest.mark.parametrize(
    ("model", "deny"),
    [
        ("codestral-latest", "mistral*"),
        ("codestral-2501", "*mistral*"),
        ("pixtral-12b-2409", "mistral*"),
        ("pixtral-large-latest", "mistral*"),
        ("mixtral-8x7b-32768", "mistral*"),
        ("open-mixtral-8x22b", "mistral*"),
        ("ministral-8b-latest", "mistral*"),
        ("magistral-medium-latest", "mistral*"),
        ("devstral-small-2505", "mistral*"),
        ("voxtral-mini-latest", "mistral*"),
        ("codeqwen:7b", "qwen*"),
        ("CodeQwen1.5-7B-Chat", "qwen*"),
        ("janus-pro-7b", "deepseek*"),
        ("JanusFlow-1.3B", "deepseek*"),
    ],
)
def test_a_familys_own_models_under_other_names_are_the_family(
    model: str, deny: str
) -> None:
    with pytest.raises(ModelDenied) as info:
        decide_model(model, allow=("*",), deny=(deny,))
    assert info.value.code == "model_denied"


@pytest.mark.parametrize(
    "model",
    [
        "llama3:8b",  # a tag, not a provider prefix
        "deepseek-r1:14b",
        "claude-3-5-sonnet@20240620",
        "gpt-4o-mini",
        "seekdeep-7b",
        "janus-7b",  # not DeepSeek's
    ],
)
def test_no_false_denials(model: str) -> None:
    allowed = decide_model(model, allow=("*",), deny=("gpt-4o", "mistral*"))
    assert allowed.raw == model


def test_a_provider_prefix_never_allows() -> None:
    # The aliases widen what a deny pattern catches, never what is allowed.
    with pytest.raises(ModelDenied) as info:
        decide_model("evil:gpt-4.1", allow=("gpt-4.1*",), deny=())
    assert info.value.code == "model_not_allowed"
