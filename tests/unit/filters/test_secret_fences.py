"""The assignment judge reads the language of the fenced code block a site
is in: an unquoted right-hand side is a name in code, a value in config; a
single-quoted one is a character in C, Java, Go."""

from __future__ import annotations

import pytest

from aiinvariants.filters import SecretsFilter
from aiinvariants.filters._assignment_syntax import (
    CHAR_QUOTES,
    FENCE_REACH,
    LANGUAGES,
    NAME_RHS,
    fence_language,
    fence_signature,
)

F = SecretsFilter()
VALUE = "Xk9#mP2vLq7z"  # strong: four classes, no placeholder word


def rules(text: str) -> list[str]:
    return [f.rule_id for f in F.scan(text)]


def fenced(lang: str, line: str) -> str:
    return f"Here is the config:\n\n```{lang}\n{line}\n```\n"


CODE = sorted(NAME_RHS)
CONFIG = sorted(k for k, (rhs, _) in LANGUAGES.items() if rhs == "literal")


@pytest.mark.parametrize("lang", CODE)
def test_an_unquoted_value_in_code_is_a_name(lang: str) -> None:
    assert rules(fenced(lang, f"password = {VALUE}")) == []
    assert rules(fenced(lang, f"db_password := {VALUE}")) == []


@pytest.mark.parametrize("lang", CONFIG)
def test_an_unquoted_value_in_config_is_a_value(lang: str) -> None:
    assert "generic-credential-assignment" in rules(fenced(lang, f"password = {VALUE}"))
    assert "generic-credential-assignment" in rules(fenced(lang, f"password: {VALUE}"))


@pytest.mark.parametrize("lang", [*CODE, *CONFIG, "", "unknownlang"])
def test_a_double_quoted_value_is_judged_in_every_language(lang: str) -> None:
    assert "generic-credential-assignment" in rules(
        fenced(lang, f'password = "{VALUE}"')
    )


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_single_quotes_around_a_value_hold_a_string_in_every_language(
    lang: str,
) -> None:
    # '…' is one character in C, Java, Go: twelve characters in it are no
    # character literal of any language, but a string in the wrong quotes.
    found = rules(fenced(lang, f"api_key = '{VALUE}';"))
    assert "generic-credential-assignment" in found


def test_a_character_or_an_escape_in_single_quotes_is_a_character() -> None:
    from aiinvariants.filters._secret_values import (
        Assignment,
        _a_character_literal,
    )

    for lang in sorted(CHAR_QUOTES):
        for value, char in (("\\U0001F600", True), ("x", True), (VALUE, False)):
            a = Assignment("api_key", value, True, ";", " = ", "key", lang, "'")
            assert _a_character_literal(a) is char, (lang, value)


def test_a_long_literal_compared_with_a_credential_is_a_value() -> None:
    line = f"if ('{VALUE}' == password) {{"
    assert "credential-comparison" in rules(fenced("c", line))
    assert "credential-comparison" in rules(fenced("python", line))
    assert "credential-comparison" in rules(fenced("c", line.replace("'", '"')))


@pytest.mark.parametrize(
    "text",
    [
        f"password = {VALUE}",  # no fence at all
        f"```\npassword = {VALUE}\n```",  # a fence without a language
        f"```python\nx = 1\n```\npassword = {VALUE}\n",  # after the block closed
        f"```python password = {VALUE}\n",  # on the fence line: info string
        f"```unknownlang\npassword = {VALUE}\n```",
        f"```python\n{'#' * (FENCE_REACH + 1)}\npassword = {VALUE}\n```",  # far
        f"text ```python\npassword = {VALUE}\n",  # not at a line start
    ],
)
def test_without_a_known_language_today_s_judgement_holds(text: str) -> None:
    assert "generic-credential-assignment" in rules(text)


@pytest.mark.parametrize(
    "opener",
    ["```python", "~~~python", "````Python", "   ```python", "```{.python}",
     '```python title="settings.py"', "\t```py", "``` python"],
)  # fmt: skip
def test_fence_spellings(opener: str) -> None:
    # an indented fence (a list item's) holds the lines indented as it is
    indent = opener[: len(opener) - len(opener.lstrip())]
    text = f"{opener}\n{indent}password = {VALUE}\n```"
    assert fence_language(text, text.index("password")) in ("python", "py")
    assert rules(text) == []


def test_the_reach_is_exact() -> None:
    pad = "#" * (FENCE_REACH - len("```python\n") - 1) + "\n"
    inside = f"```python\n{pad}password = {VALUE}\n"
    at = inside.index("password")
    assert at == FENCE_REACH
    assert fence_signature(inside, at) == (FENCE_REACH, "python")
    assert rules(inside) == []
    outside = f"```python\n#{pad}password = {VALUE}\n"
    assert fence_signature(outside, outside.index("password")) is None
    assert "generic-credential-assignment" in rules(outside)


def test_the_last_fence_line_decides() -> None:
    text = f"```yaml\na: b\n```\n\n```go\nsecret := {VALUE}\n```\n"
    assert fence_language(text, text.index("secret")) == "go"
    assert rules(text) == []
    text = f"```go\na := b\n```\n\n```yaml\nsecret: {VALUE}\n```\n"
    assert "generic-credential-assignment" in rules(text)


def test_the_same_line_under_two_fences_is_judged_twice() -> None:
    # The memo reuses a site's outcome for an identical window: the fence
    # line belongs to what makes two windows identical.
    line = f"password = {VALUE}\n"
    text = f"```python\n{line}```\n\n```yaml\n{line}```\n\n```python\n{line}```\n"
    found = F.scan(text)
    assert [f.rule_id for f in found] == ["generic-credential-assignment"]
    assert text[found[0].start : found[0].end].endswith(VALUE)
    assert found[0].start > text.index("```yaml")


def test_the_filter_context_covers_the_fence() -> None:
    assert F.context >= FENCE_REACH + 1


def test_an_element_or_table_cell_stays_a_value_in_code() -> None:
    assert "generic-credential-assignment" in rules(
        fenced("java", f"<password>{VALUE}</password>")
    )
    assert "generic-credential-assignment" in rules(
        fenced("python", f"| password | {VALUE} |")
    )
