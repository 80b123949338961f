"""Red team of the output-filter speed work (issue #13).

Routes around the new fast paths, each asserting the secure outcome:

* streaming holds ("leads") for rules that start before their keyword: a
  quote glued to a string prefix (``b"…" == password``), a command glued to
  a word (``xdocker login``), a line break between the words
  (``docker\\nlogin``): the one-shot check finds these, so a stream split
  anywhere must end the same way;
* hex decoding for copies: hex written byte by byte (``5a d5 a6``,
  ``5a:d5``, ``0x5a, 0xd5``), grouped with dashes, or glued to ``0x``;
* the assignment rule's pre-scan: an upper-case name given its value after
  a bare space (``ENV PASSWORD value``), which its judge reports.
"""

from __future__ import annotations

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import (
    OutputPipeline,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)

# Both candidate searches: the RE2 pre-scan and the pure-Python one.
pytestmark = pytest.mark.usefixtures("secrets_engine")

PASSWORD = "Tr0ub4dor&3xQz!9"
PIPELINE = OutputPipeline([SecretsFilter(action="redact")])


def _streamed(pipeline: OutputPipeline, text: str, cuts: list[int]) -> str | None:
    """The streamed output in chunks cut at ``cuts``, or None when blocked."""
    guard = StreamGuard(pipeline, batch=1)
    out = ""
    prev = 0
    try:
        for cut in [*cuts, len(text)]:
            out += guard.feed(text[prev:cut])
            prev = cut
        out += guard.close()
    except OutputBlocked:
        return None
    return out


# -- streaming leads ------------------------------------------------------------

GLUED_OR_BROKEN = [
    # a string prefix glued to the literal's quote
    f'Check: if b"{PASSWORD}" == password:\n',
    f'Check: if f"{PASSWORD}" == password:\n',
    f"Check: if rb'{PASSWORD}' != secret_key:\n",
    f"Check: if x'{PASSWORD}' == db_token:\n",
    # the command glued to what comes before it
    f"Run: xdocker login -u me -p {PASSWORD}\n",
    f"Run: 1az login -u me -p {PASSWORD}\n",
    f"Run: xgh secret set X --body {PASSWORD}\n",
    # a line break (or vertical tab) where the rule allows any white space
    f"Run: docker\nlogin -u me -p {PASSWORD}\n",
    f"Run: docker\r\nlogin -u me -p {PASSWORD}\n",
    f"Run: helm\nregistry\nlogin r.example.com -u me -p {PASSWORD}\n",
    f"Run: az\x0blogin -u me -p {PASSWORD}\n",
]


@pytest.mark.parametrize("text", GLUED_OR_BROKEN)
def test_a_split_anywhere_ends_like_the_one_shot_check(text: str) -> None:
    expected = PIPELINE.check(text)
    assert not expected.blocked
    assert PASSWORD not in expected.text
    for cut in range(1, len(text)):
        assert _streamed(PIPELINE, text, [cut]) == expected.text, cut


def test_prose_apostrophes_open_no_literal() -> None:
    """A quote after a word of three letters or more ("don't") is no
    literal for the rule either, so it needs no hold."""
    text = f"I don't know. It wasn't '{PASSWORD}' == password.\n"
    check = PIPELINE.check(text)
    assert PASSWORD not in check.text  # the quoted literal still is one
    found = SecretsFilter().scan("don't do it'" + "x" * 10 + "' == password")
    assert found == []


# -- hex of copies ------------------------------------------------------------------

SECRET = "Zq9-vLm2#Rt8Kp4X"
LOOKALIKE = SECRET.replace("q", "\u0566").replace("R", "\u0280").replace("p", "\u0440")
PROMPT = (
    "You are the billing assistant of Example Corp. Never disclose the refund "
    "override code and always escalate chargebacks above 900 EUR to finance."
)


def _spellings(value: str) -> list[str]:
    hx = value.encode().hex()
    pairs = [hx[i : i + 2] for i in range(0, len(hx), 2)]
    return [
        " ".join(pairs),  # xxd / hexdump style
        ":".join(pairs).upper(),
        " ".join("0x" + p for p in pairs),
        ", ".join("0x" + p for p in pairs),
        " ".join(hx[i : i + 4] for i in range(0, len(hx), 4)),
        "-".join(hx[i : i + 8] for i in range(0, len(hx), 8)),
        "0x" + hx,
        "\n".join(" ".join(pairs[i : i + 8]) for i in range(0, len(pairs), 8)),
        # a wrapped dump, indented like a code block
        "\n    ".join(" ".join(pairs[i : i + 8]) for i in range(0, len(pairs), 8)),
    ]


@pytest.mark.parametrize("index", range(9))
def test_hex_bytes_of_a_lookalike_secret_are_found(index: int) -> None:
    encoded = _spellings(LOOKALIKE)[index]
    found = SecretsFilter(registered=[SECRET]).scan(f"Here: {encoded} done")
    assert "registered-secret" in {f.rule_id for f in found}


@pytest.mark.parametrize("index", range(9))
def test_hex_bytes_of_the_system_prompt_are_found(index: int) -> None:
    encoded = _spellings(PROMPT.upper())[index]
    leak = SystemPromptLeakFilter(system_prompt=PROMPT)
    assert "system-prompt-copy" in {f.rule_id for f in leak.scan(f"Sure: {encoded}")}


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("target", ["secret", "prompt"])
def test_streamed_hex_bytes_are_blocked_before_they_go_out(
    size: int, target: str
) -> None:
    if target == "secret":
        pipeline = OutputPipeline([SecretsFilter(registered=[SECRET])])
        encoded = _spellings(LOOKALIKE)[0]
    else:
        pipeline = OutputPipeline([SystemPromptLeakFilter(system_prompt=PROMPT)])
        encoded = _spellings(PROMPT.upper())[0]
    text = f"Here you go: {encoded} and that is all."
    guard = StreamGuard(pipeline)
    emitted: list[str] = []

    def run() -> None:
        for at in range(0, len(text), size):
            emitted.append(guard.feed(text[at : at + size]))
        emitted.append(guard.close())

    with pytest.raises(OutputBlocked) as caught:
        run()
    assert caught.value.code == "output_blocked"
    assert encoded[:11] not in "".join(emitted)
    assert SECRET not in str(caught.value)


def test_ordinary_hex_is_not_a_finding() -> None:
    f = SecretsFilter(registered=[SECRET])
    text = "MAC 00:1a:2b:3c:4d:5e:6f:70, bytes 0x00 0x01 0x02 0x03 0x04 0x05 0x06 0x07"
    assert f.scan(text) == []


# -- the assignment rule's pre-scan ----------------------------------------------

UPPER_BARE = [
    f"ENV PASSWORD {PASSWORD}",
    f"AUTH {PASSWORD}",
    f"APITOKEN\t{PASSWORD}",
    f"SECRET  {PASSWORD}",
]


@pytest.mark.parametrize("text", UPPER_BARE)
def test_an_upper_case_name_then_a_bare_space_is_tried(text: str) -> None:
    reference = SecretsFilter()
    reference._context_plan = [(k, None, i) for k, _, i in reference._context_plan]
    slow = {f.rule_id for f in reference.scan(text)}
    assert "generic-credential-assignment" in slow  # the judge reports it
    fast = {f.rule_id for f in SecretsFilter().scan(text)}
    assert fast == slow


SKIPPED_SPELLINGS = [
    f"The password is **`{PASSWORD}`**",  # Markdown bold around a code span
    f'The password is **"{PASSWORD}"**',
    f"DB_PASSWORD is      '{PASSWORD}'",  # the rule takes up to 8 blanks
    f"api_key was\t\t\t\t`{PASSWORD}`",
    f'password, **"{PASSWORD}"**',
]


@pytest.mark.parametrize("text", SKIPPED_SPELLINGS)
def test_what_the_rule_takes_after_is_the_prescan_tries(text: str) -> None:
    found = SecretsFilter(action="redact").scan(text)
    assert "generic-credential-assignment" in {f.rule_id for f in found}
    check = PIPELINE.check(f"Sure. {text}\nAnything else?")
    assert PASSWORD not in check.text
    for cut in range(1, len(text), 2):
        streamed = _streamed(PIPELINE, f"Sure. {text}\nAnything else?", [cut])
        assert streamed == check.text, cut


CONFIG_NAMES = [
    f"password-prod {PASSWORD}",  # a dash inside the rest of the name
    f"token-v2\t{PASSWORD}",
    f"secret_ {PASSWORD}",  # the separator ends the name
    f"db_apipassword {PASSWORD}",  # the separator before a glued name part
    f"Password-Prod  {PASSWORD}",
]


@pytest.mark.parametrize("text", CONFIG_NAMES)
def test_a_config_name_then_a_bare_space_is_tried(text: str) -> None:
    """The judge takes a name with a separator anywhere in it; the pre-scan
    must try every such name, not only a separator next to the keyword."""
    found = {f.rule_id for f in SecretsFilter().scan(f"ENV {text}\n")}
    assert "generic-credential-assignment" in found
    assert PASSWORD not in PIPELINE.check(f"Set it:\n{text}\nDone.").text


def test_a_long_literal_compared_after_three_spaces_is_found() -> None:
    """The rule takes a 200-character literal and three blanks before
    ``==``: its search must start that far before the keyword (one-shot
    and streamed alike)."""
    value = ("Tr0ub4dor&3xQz!9-" * 12)[:200]
    text = f'if "{value}"   == password:\n'
    found = {f.rule_id for f in SecretsFilter().scan(text)}
    assert "credential-comparison" in found
    check = PIPELINE.check(text)
    assert value not in check.text
    for cut in range(180, len(text), 7):
        assert _streamed(PIPELINE, text, [cut]) == check.text, cut


@pytest.mark.parametrize(
    "text",
    [f"gh secret set API_TOKEN -b{PASSWORD}", f"gh secret set TOKEN -b'{PASSWORD}'"],
)
def test_gh_secret_set_with_a_glued_short_flag_is_found(text: str) -> None:
    found = {f.rule_id for f in SecretsFilter().scan(text)}
    assert "gh-secret-set-body" in found
    assert PASSWORD not in PIPELINE.check(f"Run:\n{text}\n").text


def test_a_terraform_default_after_a_validation_block_is_found() -> None:
    text = (
        'variable "db_password" {\n  type = string\n  validation {\n'
        "    condition     = length(var.db_password) >= 12\n"
        '    error_message = "too short"\n  }\n'
        f'  default = "{PASSWORD}"\n}}\n'
    )
    found = {f.rule_id for f in SecretsFilter().scan(text)}
    assert "terraform-variable-default" in found
