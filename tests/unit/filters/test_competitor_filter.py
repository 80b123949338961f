"""CompetitorFilter: disparagement of named parties, not mere mentions."""

from __future__ import annotations

from aiinvariants.filters import CompetitorFilter

F = CompetitorFilter(
    names=["Globex", "Initech"],
    aliases={"Globex": ["Globex Corp", "GBX"]},
    protect=["Example Corp", "Jane Doe"],
)


def test_disparagement_is_found() -> None:
    for text in (
        "Globex is a scam.",
        "Honestly GBX support is terrible.",
        "Jane Doe is incompetent.",
        "Example Corp's product is garbage.",
    ):
        (finding,) = F.scan(text)
        assert finding.invariant == "I9"


def test_mentions_and_other_sentences_pass() -> None:
    assert F.scan("Globex and Initech also sell CRM software.") == []
    assert F.scan("Initech ships monthly. The weather is terrible.") == []
    assert F.scan("Globexample is a terrible name.") == []  # not the word Globex


def test_classifier_replaces_lexicon_and_fails_closed() -> None:
    calls: list[str] = []

    def classifier(passage: str, name: str) -> bool:
        calls.append(name)
        return "meh" in passage

    f = CompetitorFilter(names=["Globex"], classifier=classifier)
    assert f.scan("Globex is meh")
    assert not f.scan("Globex is a scam")
    assert calls == ["Globex", "Globex"]

    def broken(passage: str, name: str) -> bool:
        raise RuntimeError("down")

    assert CompetitorFilter(names=["Globex"], classifier=broken).scan("Globex rocks")
