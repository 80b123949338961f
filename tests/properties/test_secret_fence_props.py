"""A code fence's language changes one judgement and nothing else: for any
line in any fence, every finding but the credential-assignment and
comparison ones is the bare line's, and the fence never adds a finding."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants.filters import SecretsFilter
from aiinvariants.filters._assignment_syntax import LANGUAGES

F = SecretsFilter(registered=["Zq9-vLm2#Rt8Kp4X"])
GENERIC = {"generic-credential-assignment", "credential-comparison"}

NAMES = ["password", "DB_PASSWORD", "api_key", "secretToken", "auth", "passwd"]
OPS = [" = ", "=", ": ", " := ", " => ", " ", " == "]
QUOTES = ["", '"', "'", "`", "@'", 'b"']
VALUES = st.one_of(
    st.text(alphabet="abcXYZ0189#$%!-_/+.", min_size=1, max_size=24),
    st.sampled_from(
        [
            "ghp_" + "aZ3kQ9" * 6,
            "AKIAQZ7RT2MX4K5W6Y3J",
            "Zq9-vLm2#Rt8Kp4X",
            "postgres://app:Pa55w0rdX9@db/app",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "db_password",
            "os.environ['X']",
        ]
    ),
)


@st.composite
def lines(draw: st.DrawFn) -> str:
    quote = draw(st.sampled_from(QUOTES))
    close = quote[-1:] if quote else ""
    value = draw(VALUES)
    line = f"{draw(st.sampled_from(NAMES))}{draw(st.sampled_from(OPS))}"
    return f"{line}{quote}{value}{close}{draw(st.sampled_from(['', ';', ',']))}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    line=lines(),
    lang=st.sampled_from(sorted(LANGUAGES)),
    fence=st.sampled_from(["```", "~~~", "````"]),
)
def test_a_fence_only_ever_removes_an_assignment_judgement(
    line: str, lang: str, fence: str
) -> None:
    bare = F.scan(line)
    offset = len(fence) + len(lang) + 1
    fenced = [
        (f.rule_id, f.start - offset, f.end - offset)
        for f in F.scan(f"{fence}{lang}\n{line}\n{fence}")
    ]
    plain = [(f.rule_id, f.start, f.end) for f in bare]
    assert [f for f in fenced if f[0] not in GENERIC] == [
        f for f in plain if f[0] not in GENERIC
    ]
    assert set(fenced) <= set(plain)
