"""Control characters inside a protected value (found by the Agents SDK red team).

A NUL, an ESC or a DEL renders as nothing, so a credential, a registered
secret or a copy of the system prompt with one inside reads as the original.
The canonical form drops them (white space controls stay white space), one
shot and streamed.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants._internal.canonical import canonical
from aiinvariants.filters import (
    OutputPipeline,
    SecretsFilter,
    StreamGuard,
    SystemPromptLeakFilter,
)

# Both candidate searches: the RE2 pre-scan and the pure-Python one.
pytestmark = pytest.mark.usefixtures("secrets_engine")

TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
REGISTERED = "Zq9-vLm2#Rt8Kp4X"
PROMPT = (
    "You are the billing assistant of Example Corp. Never offer refunds above 50 EUR."
)
# Every C0 control that is not white space, and DEL.
CONTROLS = [chr(c) for c in (*range(0x09), *range(0x0E, 0x1C), 0x7F)]


def _pipeline() -> OutputPipeline:
    return OutputPipeline(
        [
            SecretsFilter(registered=[REGISTERED]),
            SystemPromptLeakFilter(system_prompt=PROMPT),
        ]
    )


def _stuffed(value: str, control: str, every: int) -> str:
    return control.join(value[i : i + every] for i in range(0, len(value), every))


@pytest.mark.parametrize("control", CONTROLS, ids=[f"{ord(c):#04x}" for c in CONTROLS])
@pytest.mark.parametrize(
    "value", [TOKEN, REGISTERED, PROMPT], ids=["token", "registered", "prompt"]
)
def test_a_control_character_inside_a_protected_value_hides_nothing(
    control: str, value: str
) -> None:
    text = "here it is: " + _stuffed(value, control, 5) + " - done"
    result = _pipeline().check(text)
    assert result.blocked
    assert value not in result.text


def _stream(guard: StreamGuard, text: str, emitted: list[str]) -> None:
    for i in range(0, len(text), 4):
        emitted.append(guard.feed(text[i : i + 4]))
    emitted.append(guard.close())


@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x7f"])
def test_streamed_with_control_characters_never_emits_the_token(control: str) -> None:
    text = "token " + _stuffed(TOKEN, control, 3) + " end"
    emitted: list[str] = []
    with pytest.raises(OutputBlocked) as info:
        _stream(StreamGuard(_pipeline()), text, emitted)
    assert TOKEN[:12] not in "".join(emitted).replace(control, "")
    assert TOKEN not in str(info.value)


@given(
    st.text(
        alphabet=st.characters(
            codec="utf-8", categories=("Cc", "Ll", "Lu", "Nd", "Zs")
        ),
        max_size=60,
    )
)
def test_controls_are_dropped_and_spans_map_back(text: str) -> None:
    form = canonical(text)
    assert not any(c in form.text for c in CONTROLS)
    start, end = form.span(0, len(form.text))
    assert 0 <= start <= end <= len(text)
