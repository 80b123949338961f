"""A stream split anywhere must not let a credential out.

Some rules match text *before* their keyword ("docker login -p", "gh secret
set", a quoted literal compared with ``== password``, a suffix such as
Mailchimp's ``-us6``). Streaming once held back only what was glued to a
keyword, so a split right after "docker " emitted the start of the finding,
the finding was then dropped as already decided, and the password went out
in clear. Every credential of every rule, in the contexts the fresh corpus
generator writes, is split at every position (two chunks) and must come out
exactly as the one-shot check redacts it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard

FIXTURES = Path(__file__).parents[1] / "fixtures"
PASSWORD = "Tr0ub4dor&3xQz!9"
PIPELINE = OutputPipeline([SecretsFilter(action="redact")])


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_secrets_corpus", FIXTURES / "make_secrets_corpus.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _streamed(text: str, cut: int) -> str | None:
    """The streamed output, or None when the stream was blocked."""
    guard = StreamGuard(PIPELINE, batch=1)
    out = ""
    try:
        out += guard.feed(text[:cut])
        out += guard.feed(text[cut:])
        out += guard.close()
    except OutputBlocked:
        return None
    return out


BEFORE_THE_KEYWORD = [
    f"Run: docker login -u me -p {PASSWORD}\nthen push.",
    f"Run: podman login registry.example.com -u me -p {PASSWORD}\n",
    f"Run: helm  registry login r.example.com -u me -p {PASSWORD}\n",
    f"Run: az login -u me@example.com -p {PASSWORD}\n",
    f"Run: gh secret set API_TOKEN --body {PASSWORD}\n",
    f'Check: if "{PASSWORD}" == password:\n    allow()\n',
    f"Check: if ('{PASSWORD}' !== db_token) {{ deny() }}\n",
    'Check: if "correct horse Tr0ub4dor 3xQz!9 staple" == password:\n',
]


@pytest.mark.parametrize("text", BEFORE_THE_KEYWORD)
def test_split_before_the_keyword(text: str) -> None:
    expected = PIPELINE.check(text).text
    assert "Tr0ub4dor" not in expected
    for cut in range(1, len(text)):
        assert _streamed(text, cut) == expected, cut


def test_every_rule_split_at_every_position() -> None:
    rows = [r for r in _generator().fresh_cases(31, per_rule=1) if r["label"] == "TP"]
    assert len(rows) > 100
    differ = []
    for row in rows:
        text = "Here you go:\n" + row["text"] + "\nAnything else?"
        check = PIPELINE.check(text)
        expected = None if check.blocked else check.text
        for cut in range(1, len(text), 3):
            if _streamed(text, cut) != expected:
                differ.append((row["rule_id"], cut))
                break
    assert differ == []
