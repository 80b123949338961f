"""A code fence as a way to hide a credential (I8).

The assignment judge reads the language of the fenced block a site is in:
an unquoted right-hand side in Python, Go, JavaScript… is a name, so it is
not judged as a value. An answer (or a prompt injection steering it) can
choose the fence. What a fence may change is that one judgement, nothing
else: provider-format tokens, registered secrets, connection strings,
private keys, quoted values, values past the fence's reach or after it
closed are found whatever the fence says, one-shot and streamed alike.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard
from aiinvariants.filters._assignment_syntax import CHAR_QUOTES, FENCE_REACH, NAME_RHS

REGISTERED = "Zq9-vLm2#Rt8Kp4X"
F = SecretsFilter(registered=[REGISTERED])
CODE = sorted(NAME_RHS)

# Real-format credentials (synthetic values): each has its own rule.
TOKENS = [
    "ghp_" + "aZ3kQ9" * 6,
    "AKIAQZ7RT2MX4K5W6Y3J",
    "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "postgres://app:Pa55w0rdX9@db.internal/app",
    REGISTERED,
]


GENERIC = {"generic-credential-assignment", "credential-comparison"}


def found(text: str) -> set[str]:
    return {f.rule_id for f in F.scan(text)}


def specific(text: str) -> set[str]:
    """The findings of every rule but the two the fence may change."""
    return found(text) - GENERIC


@pytest.mark.parametrize("lang", CODE)
@pytest.mark.parametrize("token", TOKENS)
def test_a_token_unquoted_in_a_code_fence_is_found(lang: str, token: str) -> None:
    for line in (f"api_key = {token}", f"password := {token}", f"token: {token}"):
        text = f"```{lang}\n{line}\n```"
        assert specific(text), (lang, line)
        assert specific(text) == specific(line)  # the fence changes nothing here


@pytest.mark.parametrize("lang", sorted(CHAR_QUOTES))
@pytest.mark.parametrize("token", TOKENS)
def test_a_token_in_a_character_literal_is_found(lang: str, token: str) -> None:
    line = f"api_key = '{token}';"
    assert specific(f"```{lang}\n{line}\n```") == specific(line) != set()


def test_a_private_key_in_a_code_fence_blocks() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    )
    text = f"```python\nkey = {pem}```"
    assert "private-key" in found(text)
    with pytest.raises(OutputBlocked):
        OutputPipeline([SecretsFilter()]).enforce(text)


@pytest.mark.parametrize("lang", CODE)
def test_quoted_values_are_found_in_every_code_fence(lang: str) -> None:
    for line in (
        'password = "Xk9#mP2vLq7z"',
        'DB_PASSWORD := "Xk9#mP2vLq7z"',
        '"api_key": "Xk9#mP2vLq7z",',
        'if ("Xk9#mP2vLq7z" == password) {',
    ):
        assert found(f"```{lang}\n{line}\n```"), (lang, line)


@pytest.mark.parametrize(
    "text",
    [
        # the block closed before the value
        "```python\nimport os\n```\nDB_PASSWORD=Xk9#mP2vLq7z\n",
        # a fence opened farther back than the reach
        "```python\n" + "# padding\n" * (FENCE_REACH // 10 + 1)
        + "password = Xk9#mP2vLq7z\n",
        # a fence word mid-line is no fence
        "See ```python\npassword = Xk9#mP2vLq7z\n",
        # the value on the fence line itself is its info string, not code
        "```python password = Xk9#mP2vLq7z\n",
        # a language the table does not know
        "```brainfuck\npassword = Xk9#mP2vLq7z\n```",
        # config languages read an unquoted value as a value
        "```yaml\npassword: Xk9#mP2vLq7z\n```",
        "```env\nDB_PASSWORD=Xk9#mP2vLq7z\n```",
        "```bash\nexport DB_PASSWORD=Xk9#mP2vLq7z\n```",
        "```ini\n[db]\npassword = Xk9#mP2vLq7z\n```",
    ],
)  # fmt: skip
def test_a_fence_that_does_not_apply_hides_nothing(text: str) -> None:
    assert "generic-credential-assignment" in found(text)


PIPE = OutputPipeline([SecretsFilter(action="redact", registered=[REGISTERED])])
LINES = [
    "password = Xk9#mP2vLq7z\n",
    'password = "Xk9#mP2vLq7z"\n',
    "api_key = 'Xk9#mP2vLq7z';\n",
    "token := Xk9#mP2vLq7z\n",
]
PIECES = st.one_of(
    st.sampled_from(["```python\n", "```yaml\n", "```c\n", "~~~go\n", "```\n"]),
    st.sampled_from(LINES),
    st.integers(0, FENCE_REACH + 40).map(lambda n: "#" * n + "\n"),
    st.text(alphabet="ab `~\n", max_size=8),
)


def _stream(text: str, cuts: list[int], batch: int | None) -> tuple[str, bool]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    guard = StreamGuard(PIPE, batch=batch)
    out: list[str] = []
    try:
        for a, b in itertools.pairwise(points):
            out.append(guard.feed(text[a:b]))
        out.append(guard.close())
    except OutputBlocked:
        return "".join(out), True
    return "".join(out), False


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(PIECES, max_size=10),
    cuts=st.lists(st.integers(0, 5000), max_size=30),
    batch=st.sampled_from([1, 7, 64, None]),
)
def test_a_stream_reads_the_fence_as_the_one_shot_check_does(
    parts: list[str], cuts: list[int], batch: int | None
) -> None:
    # The fence may lie far before the value, across many chunks: the
    # filter's context covers the fence's reach, so a stream's window holds
    # the same fence line the whole answer does.
    text = "".join(parts)
    expected = PIPE.check(text)
    out, blocked = _stream(text, cuts, batch)
    assert blocked == expected.blocked
    if not blocked:
        assert out == expected.text


@pytest.mark.parametrize("batch", [1, 16, None])
@pytest.mark.parametrize("pad", [60, 120, FENCE_REACH - 40])
def test_a_fence_far_before_the_value_streams_as_one_shot(
    batch: int | None, pad: int
) -> None:
    text = "```python\n" + "#" * pad + "\npassword = Xk9#mP2vLq7z\n```\n"
    expected = PIPE.check(text)
    assert not expected.findings  # within the reach: a name, not a value
    out, blocked = _stream(text, list(range(0, len(text), 3)), batch)
    assert (out, blocked) == (text, False)
