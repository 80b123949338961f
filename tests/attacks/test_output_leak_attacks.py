"""Known ways to get a secret past output filters, and the guarantees that stop them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.audit import AuditLog, capture
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard

CORPUS = Path(__file__).parents[1] / "fixtures" / "secrets_corpus.jsonl"
TP = [
    json.loads(line)
    for line in CORPUS.read_text(encoding="utf-8").splitlines()
    if '"TP"' in line
]
GHP = "ghp_" + "aZ3kQ9" * 6


def drain(guard: StreamGuard, chunks: list[str]) -> tuple[str, bool]:
    """Feed every chunk; return what was emitted and whether it was blocked."""
    out: list[str] = []
    try:
        for chunk in chunks:
            out.append(guard.feed(chunk))
        out.append(guard.close())
    except OutputBlocked:
        return "".join(out), True
    return "".join(out), False


def test_secret_split_across_chunks_is_never_emitted() -> None:
    """llm-guard fires after the secret has streamed; here nothing of it leaves."""
    text = f"Here you go: {GHP} — enjoy."
    for cut in range(1, len(text)):
        guard = StreamGuard(OutputPipeline([SecretsFilter()]), batch=1)
        out, blocked = drain(guard, [text[:cut], text[cut:]])
        assert blocked
        assert "ghp_" not in out
        assert GHP[4:12] not in out


def test_every_second_character_stream() -> None:
    p = OutputPipeline([SecretsFilter(action="redact")])
    text = f"a {GHP} b {GHP[::-1]} c"
    guard = StreamGuard(p, batch=2)
    out = "".join(guard.feed(text[i : i + 2]) for i in range(0, len(text), 2))
    out += guard.close()
    assert out == p.check(text).text
    assert GHP not in out


def test_multiple_secrets_are_all_redacted() -> None:
    """The llm-guard bug: with several secrets, some stayed in clear text."""
    values = [row["text"] for row in TP[:60:3]]
    text = "\n".join(values)
    result = OutputPipeline([SecretsFilter(action="redact")]).check(text)
    for finding in result.findings:
        assert text[finding.start : finding.end] not in result.text


@pytest.mark.parametrize("row", TP[::3], ids=lambda r: r["rule_id"])
def test_secrets_never_travel(
    row: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Findings, reprs, exceptions and audit events never carry the value."""
    caplog.set_level(logging.DEBUG)
    pipeline = OutputPipeline([SecretsFilter()], audit=AuditLog())
    with capture() as events, pytest.raises(OutputBlocked) as info:
        pipeline.enforce(row["text"])
    findings = pipeline.scan(row["text"])
    assert findings
    for finding in findings:
        value = row["text"][finding.start : finding.end]
        core = value[len(value) // 3 : len(value) // 3 + 12]
        for shown in (
            repr(finding),
            str(finding),
            str(info.value),
            repr(info.value),
            repr(pipeline.check(row["text"])),
            json.dumps([e.to_dict() for e in events]),
            caplog.text,
        ):
            assert core not in shown


def test_glued_and_prefixed_credentials() -> None:
    aws = "AKIAQZ7RT2MX4K5W6Y3J"
    f = SecretsFilter()
    assert {x.rule_id for x in f.scan(GHP + aws)} >= {"github-pat", "aws-access-key-id"}
    assert f.scan("x" + aws)


def test_encoded_registered_secret_in_stream() -> None:
    value = "Zq9-vLm2#Rt8Kp4X"
    p = OutputPipeline([SecretsFilter(registered=[value])])
    spaced = " ".join(value.upper())
    out, blocked = drain(StreamGuard(p), list(f"The key is {spaced}."))
    assert blocked
    # At most what precedes the finding, nothing of it.
    assert "The key is ".startswith(out)
