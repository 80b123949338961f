"""A provider key that is a segment of a URL's path.

The blob rule drops a prefix match glued on both sides to 48 or more
base64 characters (an image, a data URI), and ``/`` is a base64 character:
a key between the ``/`` of a long URL path was dropped. Inside a URL
(``scheme://`` before it, nothing that ends a URL between) ``/`` separates
segments and glues nothing: the blob rule then counts the characters glued
within the key's segment. The class: every scheme, the key anywhere in the
path (first segment, last, before a query or a fragment, a query value),
every token rule, every way an answer carries a URL (bare, markdown link,
angle brackets, HTML attribute); one-shot and streamed. Keys planted in
base64 images and data URIs stay unreported (the trade-off measured in
``benchmarks filters``), and a segment that is itself a long identifier or
blob is still one.
"""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard

pytestmark = pytest.mark.usefixtures("secrets_engine")

FILTER = SecretsFilter()
_AL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _random(size: int, seed: int) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice(_AL) for _ in range(size))


# (rule id, key): token rules whose key has no embedded checksum (a verified
# key is never dismissed, so it tests nothing here)
KEYS = [
    ("stripe-secret-key", "sk_live_qxyDDtGjX5XGhGbmutEqh7d5"),
    ("aws-access-key-id", "AKIAQ2XK7ZL3MNB4V5WC"),
    ("gcp-api-key", "AIza" + _random(35, 1)),
    ("gitlab-pat", "glpat-" + _random(20, 2)),
    ("slack-bot-token", "xoxb-2048613920-7261930481736-" + _random(24, 3)),
]
LONG = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrst"

PATHS = [
    "https://api.example.com/v1/projects/prj8Kq2/keys/{}/rotate/confirm/now",
    "https://example.com/{}/" + LONG,
    "http://example.com/" + LONG + "/{}",
    "https://example.com/" + LONG + "/{}?expand=true&page=" + LONG,
    "https://example.com/" + LONG + "/{}#" + LONG,
    "https://example.com/hooks?key={}&next=" + LONG,
    "s3://bucket-name/exports/2024/{}/" + LONG,
    "git+https://ci.example.com/org/repo/{}/" + LONG,
    "ftp://files.example.com/pub/" + LONG + "/{}/readme",
]
CARRIERS = [
    "{}",
    "[the link]({})",
    "<{}>",
    '<a href="{}">rotate</a>',
    "GET {} HTTP/1.1",
]


@pytest.mark.parametrize(("rule", "key"), KEYS, ids=[r for r, _ in KEYS])
@pytest.mark.parametrize("path", PATHS)
def test_a_key_as_a_url_path_segment_is_found(rule: str, key: str, path: str) -> None:
    text = path.format(key)
    found = FILTER.scan(text)
    assert rule in {f.rule_id for f in found}, text
    at = text.index(key)
    # the finding covers the key (and at most its own segment)
    ours = [f for f in found if f.rule_id == rule]
    assert any(f.start <= at and at + len(key) <= f.end for f in ours)
    assert all("/" not in text[f.start : f.end] for f in ours)


@pytest.mark.parametrize("carrier", CARRIERS)
def test_every_carrier_of_a_url(carrier: str) -> None:
    rule, key = KEYS[0]
    text = "Call " + carrier.format(PATHS[0].format(key)) + " to rotate it."
    with pytest.raises(OutputBlocked) as caught:
        OutputPipeline([SecretsFilter()]).enforce(text)
    assert caught.value.code == "output_blocked"
    assert rule in caught.value.rule_ids
    assert key not in str(caught.value)
    redacted = OutputPipeline([SecretsFilter(action="redact")]).check(text).text
    assert key not in redacted
    assert "rotate/confirm/now" in redacted  # only the key's segment is masked


@settings(max_examples=40, deadline=None)
@given(
    key=st.sampled_from([k for _, k in KEYS]),
    before=st.integers(0, 6),
    after=st.integers(0, 6),
    seed=st.integers(0, 2**16),
    cuts=st.lists(st.integers(1, 17), max_size=20),
)
def test_property_any_path_any_chunking(
    key: str, before: int, after: int, seed: int, cuts: list[int]
) -> None:
    """Any number of segments of any length around the key: found, and a
    stream masks it like the one-shot check."""
    rnd = random.Random(seed)
    segs = [_random(rnd.randint(1, 24), rnd.randint(0, 10**6)) for _ in range(12)]
    url = "/".join(["https://x.example.com", *segs[:before], key, *segs[6 : 6 + after]])
    answer = f"Open {url} now.\n"
    pipeline = OutputPipeline([SecretsFilter(action="redact")])
    one_shot = pipeline.check(answer).text
    assert key not in one_shot
    guard = StreamGuard(pipeline)
    out: list[str] = []
    at = 0
    for size in cuts:
        out.append(guard.feed(answer[at : at + size]))
        at += size
    out.append(guard.feed(answer[at:]))
    out.append(guard.close())
    assert "".join(out) == one_shot


# -- what stays a blob ----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from([k for _, k in KEYS]),
    seed=st.integers(0, 2**32 - 1),
    at=st.integers(8, 200),
    slashes=st.booleans(),
)
def test_property_a_key_planted_in_an_image_stays_unreported(
    key: str, seed: int, at: int, slashes: bool
) -> None:
    """Anywhere in a base64 image, with or without ``/`` right around it
    (the neighbouring slash alone is not a URL)."""
    blob = base64.b64encode(random.Random(seed).randbytes(300)).decode()
    planted = blob[:at] + ("/" if slashes else "") + key + ("/" if slashes else "")
    planted += blob[at:]
    for text in (
        "data:image/png;base64," + planted,
        f'<img src="data:image/jpeg;base64,{planted}">',
        f"![chart](data:image/png;base64,{planted})",
        f"background: url(data:image/gif;base64,{planted});",
        f'{{"image": "{planted}"}}',
    ):
        assert FILTER.scan(text) == [], text[:80]


@pytest.mark.parametrize(
    "text",
    [
        # a segment that is itself a long identifier or blob: still one
        "https://example.com/build/MyHelperAKIAQ2XK7ZL3MNB4V5WCFactoryBuilderFor"
        "TheWholeTeamAndItsFriends/x/" + LONG,
        "https://cdn.example.com/"
        + LONG
        + "/"
        + LONG
        + "AKIAQ2XK7ZL3MNB4V5WC"
        + LONG
        + "/"
        + LONG,
        # a URL that ended before the blob (white space, a quote, a bracket)
        "https://example.com/a " + LONG + "/AKIAQ2XK7ZL3MNB4V5WC/" + LONG,
        '"https://example.com/a" ' + LONG + "/AKIAQ2XK7ZL3MNB4V5WC/" + LONG,
        # a data URI is no URL with an authority
        "data:text/plain;base64," + LONG + "/AKIAQ2XK7ZL3MNB4V5WC/" + LONG,
    ],
)
def test_blobs_inside_and_outside_urls_stay_blobs(text: str) -> None:
    assert FILTER.scan(text) == []


def test_a_long_path_before_the_key() -> None:
    """The URL's start is looked for up to 2048 characters back (a bounded
    read per candidate): a 1,500-character path before the key is read."""
    key = KEYS[1][1]
    url = "https://example.com/" + "/".join([LONG] * 32) + f"/{key}/{LONG}"
    assert 1400 < url.index(key) < 2048
    assert [f.rule_id for f in FILTER.scan(url)] == ["aws-access-key-id"]


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from([k for _, k in KEYS]),
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(150, 400),
)
def test_property_a_key_at_a_padded_blobs_end_stays_unreported(
    key: str, seed: int, size: int
) -> None:
    """A key planted at the end of an image, right before its ``=``
    padding: the match runs to the blob's end, and the padding is glued."""
    data = random.Random(seed).randbytes(size - size % 3 + 1)  # padded: ==
    blob = base64.b64encode(data).decode()
    body, pad = blob.rstrip("="), blob[len(blob.rstrip("=")) :]
    planted = body + key + pad
    for text in (
        "data:image/png;base64," + planted,
        f'<img src="data:image/png;base64,{planted}">',
    ):
        assert FILTER.scan(text) == [], text[-80:]


@pytest.mark.parametrize("rule_key", KEYS[:2], ids=[r for r, _ in KEYS[:2]])
def test_a_key_with_an_equals_sign_after_it_is_still_found(
    rule_key: tuple[str, str],
) -> None:
    """Padding counts only after 48+ glued characters: a key then ``=`` or
    ``==`` in prose or an assignment is reported."""
    rule, key = rule_key
    for text in (f"{key}==", f"x{key}=", f"token={key}= done", f"KEY={key}=="):
        assert rule in {f.rule_id for f in FILTER.scan(text)}, text
