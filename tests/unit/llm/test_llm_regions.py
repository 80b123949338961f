"""Region derivation and decision (I6); data-use opt-out rules (I7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinvariants import ModelDenied, RegionDenied
from aiinvariants.llm import (
    OPT_OUT_SWITCHES,
    Placement,
    apply_opt_out,
    decide_region,
    region_from_url,
)
from aiinvariants.llm._regions import pattern_within

EU = ("eu-*", "europe-*", "swedencentral", "eu")
DECLARED = {"https://myres.openai.azure.com": "swedencentral"}


@pytest.mark.parametrize(
    ("url", "home"),
    [
        ("https://api.openai.com/v1", None),
        ("https://eu.api.openai.com/v1", "eu"),
        ("https://api.anthropic.com", None),
        (
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p",
            "europe-west4",
        ),
        ("https://bedrock-runtime.eu-central-1.amazonaws.com", "eu-central-1"),
        ("https://myres.openai.azure.com/openai/", "swedencentral"),
        ("https://MYRES.openai.azure.com/openai/deployments/x", "swedencentral"),
        ("https://other.openai.azure.com/openai/", None),
        ("http://127.0.0.1:9999/v1", None),
    ],
)
def test_region_from_url(url: str, home: str | None) -> None:
    assert region_from_url(url, DECLARED).home == home


def test_vertex_global_endpoint_may_route_anywhere() -> None:
    placement = region_from_url("https://aiplatform.googleapis.com/v1", {})
    with pytest.raises(RegionDenied) as info:
        decide_region(placement, allow=(*EU, "global"))
    assert info.value.code == "cross_region_profile"


def test_no_restriction_allows_unknown() -> None:
    decide_region(Placement(None), allow=None)


def test_unknown_region_is_denied() -> None:
    with pytest.raises(RegionDenied) as info:
        decide_region(Placement(None), allow=EU)
    assert (info.value.code, info.value.invariant) == ("region_unknown", "I6")


def test_region_outside_allow_list() -> None:
    with pytest.raises(RegionDenied) as info:
        decide_region(Placement("us-east-1"), allow=EU)
    assert info.value.code == "region_denied"


def test_empty_allow_list_allows_no_region() -> None:
    with pytest.raises(RegionDenied):
        decide_region(Placement("eu-west-1"), allow=())


@pytest.mark.parametrize(
    ("routes", "ok"),
    [
        (("eu-*",), True),
        (("eu-central-*",), True),
        (("eu-west-3",), True),
        (("us-*",), False),
        (("*",), False),
        (("e*",), False),
        (("eu-*", "us-*"), False),
    ],
)
def test_cross_region_routes(routes: tuple[str, ...], ok: bool) -> None:
    placement = Placement("eu-central-1", routes)
    if ok:
        decide_region(placement, allow=EU)
    else:
        with pytest.raises(RegionDenied) as info:
            decide_region(placement, allow=EU)
        assert info.value.code == "cross_region_profile"


@given(
    route=st.from_regex(r"[a-z*]{1,6}(-[a-z*]{1,6}){0,2}", fullmatch=True),
    region=st.from_regex(r"[a-z]{1,6}(-[a-z]{1,6}){0,2}(-[0-9])?", fullmatch=True),
)
def test_pattern_within_is_sound(route: str, region: str) -> None:
    # If a route is judged within the allow-list, every region it matches is.
    from fnmatch import fnmatchcase

    if pattern_within(route, EU) and fnmatchcase(region, route):
        assert any(fnmatchcase(region, p) for p in EU)


def test_openai_store_is_turned_off() -> None:
    assert apply_opt_out("openai", {"model": "m"}, require=True)["store"] is False
    assert apply_opt_out("openai", {"store": False}, require=True)["store"] is False


def test_openai_store_true_is_refused_when_required() -> None:
    with pytest.raises(ModelDenied) as info:
        apply_opt_out("openai", {"store": True}, require=True)
    assert (info.value.invariant, info.value.code) == ("I7", "data_use_opt_in")


def test_openai_store_true_is_kept_when_not_required() -> None:
    assert apply_opt_out("openai", {"store": True}, require=False)["store"] is True


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_providers_without_a_switch_send_nothing_extra(provider: str) -> None:
    assert OPT_OUT_SWITCHES[provider] == {}
    assert apply_opt_out(provider, {"a": 1}, require=True) == {"a": 1}


def test_opt_out_switches_exist_in_the_installed_sdk() -> None:
    import inspect

    openai = pytest.importorskip("openai")
    client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:1/v1")
    for create in (client.chat.completions.create, client.responses.create):
        assert set(OPT_OUT_SWITCHES["openai"]) <= set(
            inspect.signature(create).parameters
        )
