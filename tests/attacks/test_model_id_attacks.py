"""Model ids in disguise (I5): lookalikes, invisible characters, derivatives.

Every id below names a denied family to a human reader or to the provider;
each must be denied with a stable code before anything is sent.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import ModelDenied
from aiinvariants.llm import decide_model, normalize_model
from aiinvariants.llm._model_catalog import DERIVATIVES, derived_from, squash
from aiinvariants.testing import strategies as ais

ALLOW = ("*anthropic.claude-*", "claude-*", "gpt-4.1*", "*meta.llama*", "llama-*")
DENY = ("deepseek*", "qwen*")


def denied_code(model: str, *, allow: tuple[str, ...] = ALLOW) -> str:
    with pytest.raises(ModelDenied) as info:
        decide_model(model, allow=allow, deny=DENY)
    return info.value.code


@pytest.mark.parametrize(
    "model",
    [
        "DeepSeek-R1",
        "DEEPSEEK-CHAT",
        "d\u0435\u0435pseek-r1",  # Cyrillic e
        "\u0434eepseek-r1",  # Cyrillic de is not a d: see test below
        "deep\u200bseek-r1",  # zero-width space
        "deep\u200dseek-r1",  # zero-width joiner
        "deep\u2060seek-r1",  # word joiner
        "deep\ufeffseek-r1",  # BOM
        "deep\u00adseek-r1",  # soft hyphen
        "deep\u202eseek-r1",  # bidi override
        "\uff44\uff45\uff45\uff50\uff53\uff45\uff45\uff4b-r1",  # fullwidth
        "\U0001d41d\U0001d41e\U0001d41e\U0001d429seek-r1",  # mathematical bold
        "de\u0301epseek-r1",  # combining acute accent
        "deepseek\\u002dr1",  # a JSON escape inside the id
        "deepseek&#45;r1",  # an HTML reference inside the id
        "Deep Seek R1",
        "deep_seek_r1",
        "d-e-e-p-s-e-e-k-r-1",
        "d/e/e/p/s/e/e/k",
        "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
        "ollama/deepseek-r1:14b",
        "openrouter/deepseek/deepseek-r1:free",
        "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
        "accounts/fireworks/models/deepseek-v3",
        "eu.deepseek.r1-v1:0",
        "arn:aws:bedrock:eu-west-1::foundation-model/deepseek.r1-v1:0",
        "  deepseek-r1  ",
        "Qwen/Qwen2.5-72B-Instruct",
    ],
)
def test_disguised_family_is_denied(model: str) -> None:
    if model.startswith("\u0434"):
        # Cyrillic "д" resembles no Latin letter closely enough for UTS #39:
        # the id is not ASCII once canonical, so it is unreadable.
        assert denied_code(model) == "model_unknown"
        return
    assert denied_code(model) == "model_denied"


def test_small_capitals_read_as_their_letters() -> None:
    # Their Unicode names spell the letter; the canonical form folds them.
    assert denied_code("\u1d05\u1d07\u1d07\u1d18s\u1d07\u1d07\u1d0b") == "model_denied"


@pytest.mark.parametrize(
    "model",
    [
        "d\u0435\u0435\u03c1\u0455\u0435\u0435\u03ba",  # Greek rho, kappa
        "\u202b\u0434\u0435\u0435\u0440",
    ],
)
def test_letters_no_table_folds_are_unreadable(model: str) -> None:
    assert denied_code(model, allow=("*",)) == "model_unknown"


@pytest.mark.parametrize(
    ("model", "base_word"),
    [
        ("MAI-DS-R1", "deepseek"),
        ("microsoft/MAI-DS-R1-FP8", "deepseek"),
        ("mai_ds_r1", "deepseek"),
        ("perplexity-ai/r1-1776", "deepseek"),
        ("perplexity/r1-1776", "deepseek"),
        ("r1-1776-distill-llama-70b", "deepseek"),
        ("r1-1776:671b", "deepseek"),
        ("agentica-org/DeepScaleR-1.5B-Preview", "deepseek"),
        ("agentica-org/DeepCoder-14B-Preview", "deepseek"),
        ("nvidia/DLER-R1-1.5B-Research", "deepseek"),
        ("Qwen/QwQ-32B", "qwen"),
        ("qwq:32b", "qwen"),
        ("QVQ-72B-Preview", "qwen"),
        ("M\u0410I-DS-R1", "deepseek"),  # Cyrillic A in a derivative
    ],
)
def test_catalogued_derivatives_are_their_family(model: str, base_word: str) -> None:
    with pytest.raises(ModelDenied) as info:
        decide_model(model, allow=("*",), deny=(f"{base_word}*",))
    assert info.value.code == "model_denied"


def test_derivatives_are_denied_by_a_base_model_pattern_too() -> None:
    with pytest.raises(ModelDenied):
        decide_model("MAI-DS-R1", allow=("*",), deny=("deepseek-r1*",))
    with pytest.raises(ModelDenied):
        decide_model("r1-1776", allow=("*",), deny=("deepseek-ai/*",))
    # A derivative never widens the allow-list: allowing the base does not
    # allow the derivative.
    with pytest.raises(ModelDenied) as info:
        decide_model("MAI-DS-R1", allow=("deepseek*",), deny=())
    assert info.value.code == "model_not_allowed"


def test_every_catalogue_entry_is_sourced_and_reachable() -> None:
    assert DERIVATIVES
    for entry in DERIVATIVES:
        assert entry.source.startswith("https://"), entry
        assert entry.prefix == squash(entry.prefix), entry
        assert "/" in entry.base, entry
        # The publisher's own id (the last path segment of the source) hits it.
        published = entry.source.rsplit("/", 1)[-1]
        assert entry.base in derived_from(published), entry


def test_catalogue_does_not_catch_unrelated_models() -> None:
    for model in (
        "claude-3-5-sonnet",
        "gpt-4.1",
        "llama-3.3-70b",
        "deepseek-coder",
        "r1",
        "mistral-large",
    ):
        assert derived_from(normalize_model(model).name) == ()


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:bedrock:eu-central-1:123456789012:provisioned-model/a1b2c3",
        "arn:aws:bedrock:eu-central-1:123456789012:imported-model/a1b2c3",
        "arn:aws:bedrock:eu-central-1:123456789012:custom-model/x/a1b2c3",
        "arn:aws:bedrock:eu-central-1:123456789012:application-inference-profile/a",
        "arn:aws:bedrock:eu-central-1:123456789012:custom-model-deployment/a",
        "arn:aws:bedrock:eu-central-1:123456789012:prompt/P1:1",
        "arn:aws:bedrock:eu-central-1:123456789012:default-prompt-router/r:1",
        "arn:aws:sagemaker:eu-central-1:123456789012:endpoint/e",
    ],
)
def test_an_arn_that_hides_its_family_fails_closed(arn: str) -> None:
    assert denied_code(arn, allow=("*",)) == "model_unknown"
    # Allowed only when the policy names ARNs explicitly.
    assert decide_model(arn, allow=(arn,), deny=DENY).opaque


@pytest.mark.parametrize(
    "arn",
    ["arn:aws:bedrock:eu-central-1:123456789012:foundation-model/", "arn:aws:bedrock"],
)
def test_an_arn_without_a_model_is_unreadable(arn: str) -> None:
    assert denied_code(arn, allow=("*", arn)) == "model_unknown"


def test_opaque_arn_allow_patterns_are_compared_canonically() -> None:
    arn = "arn:aws:bedrock:eu-central-1:123456789012:provisioned-model/a1b2c3"
    assert decide_model(arn.upper(), allow=(arn,), deny=()).opaque
    assert decide_model(
        arn, allow=("arn:aws:bedrock:eu-central-1:123456789012:*",), deny=()
    ).opaque


_DENIED_IDS = (
    "deepseek-r1",
    "deepseek.r1-v1:0",
    "DeepSeek-R1-Distill-Llama-70B",
    "deepseek-ai/DeepSeek-V3",
    "MAI-DS-R1",
    "r1-1776",
    "QwQ-32B",
)
# Obfuscations a reader (or a lenient router) still reads as the name.
_READABLE = ("verbatim", "upper", "lower", "spaced", "separated", "zero_width")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_DENIED_IDS).flatmap(lambda m: ais.obfuscations(m)))
def test_any_obfuscation_of_a_denied_id_is_denied(model: str) -> None:
    with pytest.raises(ModelDenied):
        decide_model(model, allow=ALLOW, deny=DENY)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_DENIED_IDS).flatmap(
        lambda m: ais.obfuscations(m, kinds=(*_READABLE, "homoglyph"))
    )
)
def test_readable_obfuscations_are_denied_as_the_family(model: str) -> None:
    with pytest.raises(ModelDenied) as info:
        decide_model(model, allow=("*",), deny=DENY)
    assert info.value.code in {"model_denied", "model_unknown"}
