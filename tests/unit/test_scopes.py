from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinvariants import (
    ANONYMOUS,
    AuthenticationRequired,
    Guard,
    PolicyError,
    Principal,
    ScopeDenied,
    ScopeRule,
    acting_as,
    all_of,
    any_of,
    enforce_user_scope,
    requires_authentication,
)
from aiinvariants._scopes import MAX_ALTERNATIVES
from aiinvariants.audit import MemorySink


def user(*scopes: str, subject: str = "alice") -> Principal:
    return Principal(subject=subject, authenticated=True, scopes=frozenset(scopes))


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


@pytest.fixture
def guard(memory: MemorySink) -> Guard:
    return Guard(sinks=[memory])


# -- the rule algebra --------------------------------------------------------


def test_rule_algebra() -> None:
    rule = all_of("a") & any_of("b", "c")
    assert set(rule.alternatives) == {frozenset("ab"), frozenset("ac")}
    assert rule.allows(frozenset("ab"))
    assert not rule.allows(frozenset("bc"))
    assert (all_of("a") | all_of("a", "b")) == all_of("a")  # absorption
    assert str(all_of("x:1") | all_of("y:1", "z:1")) == "x:1 | (y:1 & z:1)"
    assert str(rule) == "a & (b | c)"
    assert str(all_of("b", "a")) == "a & b"
    assert hash(any_of("a", "b")) == hash(any_of("b", "a"))
    assert rule.scopes == frozenset("abc")


def test_closest_alternative_is_the_one_missing_least() -> None:
    rule = all_of("a", "b", "c") | all_of("d", "e")
    assert rule.closest(frozenset({"a", "b"})) == frozenset("abc")
    assert rule.closest(frozenset({"d"})) == frozenset("de")
    assert rule.closest(frozenset()) == frozenset("de")


@pytest.mark.parametrize(
    "build",
    [
        lambda: all_of(),
        lambda: any_of(),
        lambda: all_of('bad"scope'),
        lambda: all_of("two words"),
        lambda: ScopeRule([]),
        lambda: ScopeRule(["ab"]),
        lambda: enforce_user_scope(),
        lambda: enforce_user_scope(any_scopes="a b"),
        lambda: enforce_user_scope(3),  # type: ignore[arg-type]
        lambda: enforce_user_scope("a\r\nX-Injected: 1"),
    ],
)
def test_bad_rules_are_refused_at_decoration_time(build: object) -> None:
    with pytest.raises(PolicyError):
        build()  # type: ignore[operator]


def test_rules_cannot_explode() -> None:
    rule = any_of("a1", "a2", "a3", "a4") & any_of("b1", "b2", "b3", "b4")
    rule = rule & any_of("c1", "c2", "c3", "c4")
    assert len(rule.alternatives) == MAX_ALTERNATIVES
    with pytest.raises(PolicyError, match="alternatives"):
        _ = rule & any_of("d1", "d2")


ALPHABET = ["s1", "s2", "s3", "s4"]
Expr = tuple  # ("all", names) | ("any", names) | ("and"|"or", left, right)

leaves = st.one_of(
    st.tuples(
        st.just("all"), st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=3)
    ),
    st.tuples(
        st.just("any"), st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=3)
    ),
)
expressions = st.recursive(
    leaves,
    lambda inner: st.tuples(st.sampled_from(["and", "or"]), inner, inner),
    max_leaves=5,
)


def build(expr: Expr) -> ScopeRule:
    kind = expr[0]
    if kind == "all":
        return all_of(*expr[1])
    if kind == "any":
        return any_of(*expr[1])
    left, right = build(expr[1]), build(expr[2])
    return left & right if kind == "and" else left | right


def holds(expr: Expr, held: frozenset[str]) -> bool:
    kind = expr[0]
    if kind == "all":
        return set(expr[1]) <= held
    if kind == "any":
        return bool(set(expr[1]) & held)
    if kind == "and":
        return holds(expr[1], held) and holds(expr[2], held)
    return holds(expr[1], held) or holds(expr[2], held)


@given(expressions, st.frozensets(st.sampled_from(ALPHABET)))
def test_rule_means_what_the_expression_means(expr: Expr, held: frozenset[str]) -> None:
    rule = build(expr)
    assert rule.allows(held) == holds(expr, held)
    closest = rule.closest(held)
    assert closest in rule.alternatives
    assert rule.allows(closest)


# -- the decorator on every kind of callable ----------------------------------


def test_sync_function(guard: Guard) -> None:
    @guard.enforce_user_scope("crm:read")
    def read(customer: int, *, full: bool = False) -> str:
        return f"{customer}:{full}"

    with acting_as(user("crm:read")):
        assert read(1, full=True) == "1:True"
    with acting_as(user("tickets:read")), pytest.raises(ScopeDenied) as info:
        read(1)
    assert info.value.required == ("crm:read",)
    assert info.value.missing == ("crm:read",)
    assert info.value.code == "scope_missing"
    assert info.value.invariant == "I1"
    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired):
        read(1)


def test_async_function(guard: Guard) -> None:
    @guard.enforce_user_scope("crm:read", "crm:export")
    async def export(name: str) -> str:
        await asyncio.sleep(0)
        return name

    async def call(who: Principal) -> str:
        async with acting_as(who):
            return await export("q3")

    assert inspect.iscoroutinefunction(export)
    assert asyncio.run(call(user("crm:read", "crm:export"))) == "q3"
    with pytest.raises(ScopeDenied) as info:
        asyncio.run(call(user("crm:read")))
    assert info.value.required == ("crm:export", "crm:read")
    assert info.value.missing == ("crm:export",)


def test_generator_is_checked_before_its_first_item(guard: Guard) -> None:
    ran: list[int] = []

    @guard.enforce_user_scope("tickets:read")
    def stream() -> Iterator[int]:
        ran.append(1)
        received = yield 1
        yield received * 10

    assert inspect.isgeneratorfunction(stream)
    with acting_as(user("tickets:read")):
        gen = stream()
        assert next(gen) == 1
        assert gen.send(4) == 40
    with acting_as(user()):
        gen = stream()
        with pytest.raises(ScopeDenied):
            next(gen)
    assert ran == [1]


def test_async_generator_delegates_send_and_throw(guard: Guard) -> None:
    closed: list[str] = []

    @guard.enforce_user_scope("tickets:read")
    async def stream() -> AsyncIterator[int]:
        try:
            received = yield 1
            try:
                yield received + 1
            except KeyError:
                yield -1
            yield 99
        finally:
            closed.append("closed")

    async def run() -> list[int]:
        agen = stream()
        out = [await agen.__anext__()]
        out.append(await agen.asend(41))
        out.append(await agen.athrow(KeyError("x")))
        await agen.aclose()
        return out

    assert inspect.isasyncgenfunction(stream)
    with acting_as(user("tickets:read")):
        assert asyncio.run(run()) == [1, 42, -1]
    assert closed == ["closed"]

    async def denied() -> None:
        async for _ in stream():
            pass

    with acting_as(user()), pytest.raises(ScopeDenied):
        asyncio.run(denied())


def test_signature_name_and_rule_are_kept(guard: Guard) -> None:
    def original(a: int, /, b: str, *, c: float = 1.0) -> str:
        """Docs."""
        return ""

    wrapped = guard.enforce_user_scope("x", any_scopes=("y", "z"))(original)
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Docs."
    assert wrapped.__wrapped__ is original
    assert wrapped.rule == all_of("x") & any_of("y", "z")
    assert wrapped.resource.endswith("original")


def test_any_of_form(guard: Guard) -> None:
    @guard.enforce_user_scope(any_scopes=("orders:refund", "finance:admin"))
    def refund() -> str:
        return "ok"

    for scope in ("orders:refund", "finance:admin"):
        with acting_as(user(scope)):
            assert refund() == "ok"
    with acting_as(user("orders:read")), pytest.raises(ScopeDenied) as info:
        refund()
    assert len(info.value.required) == 1


def test_scopes_in_arguments_grant_nothing(guard: Guard) -> None:
    """A model-controlled argument named like a scope never widens access."""

    @guard.enforce_user_scope("admin:all")
    def act(scopes: list[str], principal: Principal | None = None) -> str:
        return "acted"

    with acting_as(user("crm:read")), pytest.raises(ScopeDenied):
        act(["admin:all"], principal=user("admin:all"))


def test_www_authenticate_lists_every_needed_scope(guard: Guard) -> None:
    @guard.enforce_user_scope("crm:read", "crm:write")
    def write() -> None:
        return None

    with acting_as(user("crm:read")), pytest.raises(ScopeDenied) as info:
        write()
    assert info.value.www_authenticate == (
        'Bearer error="insufficient_scope", scope="crm:read crm:write"'
    )
    with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired) as anon:
        write()
    assert anon.value.www_authenticate == "Bearer"


def test_requires_authentication_bare_and_with_options(guard: Guard) -> None:
    @requires_authentication(guard=guard)
    def a() -> int:
        return 1

    @guard.requires_authentication
    def b() -> int:
        return 2

    @guard.requires_authentication(resource="kb.search")
    async def c() -> int:
        return 3

    with acting_as(user()):
        assert (a(), b(), asyncio.run(c())) == (1, 2, 3)
    for fn in (a, b):
        with acting_as(ANONYMOUS), pytest.raises(AuthenticationRequired):
            fn()
    assert c.resource == "kb.search"
    assert c.rule is None


def test_module_level_decorator_uses_the_guard_installed_at_call_time(
    memory: MemorySink,
) -> None:
    @enforce_user_scope("crm:read", resource="crm.read")
    def read() -> str:
        return "ok"

    installed = Guard(sinks=[memory]).install()
    try:
        with acting_as(user("crm:read")):
            assert read() == "ok"
        assert [e.resource for e in memory.events] == ["crm.read"]
    finally:
        Guard().install()
    assert installed.audit is not None


def test_not_callable_is_refused() -> None:
    with pytest.raises(PolicyError):
        enforce_user_scope("a")(42)  # type: ignore[arg-type]


def test_any_of_denial_names_every_alternative(guard: Guard) -> None:
    @guard.enforce_user_scope(all_of("orders:refund") | all_of("finance:admin"))
    def refund() -> None: ...

    @guard.enforce_user_scope(
        "crm:read", any_scopes=("reports:export", "reports:admin")
    )
    def export() -> None: ...

    with acting_as(user("kb:read")), pytest.raises(ScopeDenied) as denied:
        refund()
    assert denied.value.alternatives == (("finance:admin",), ("orders:refund",))
    assert "missing finance:admin or orders:refund" in str(denied.value)
    # The scopes common to every alternative stay grouped with each of them.
    with acting_as(user("kb:read")), pytest.raises(ScopeDenied) as denied:
        export()
    assert denied.value.needed == (
        "(crm:read and reports:admin) or (crm:read and reports:export)"
    )
    # Alternatives list only what is still missing.
    with acting_as(user("crm:read")), pytest.raises(ScopeDenied) as denied:
        export()
    assert denied.value.needed == "reports:admin or reports:export"
    assert denied.value.missing == ("reports:admin",)


def test_a_single_way_denial_reads_plainly(guard: Guard) -> None:
    @guard.enforce_user_scope("crm:read", "crm:write")
    def write() -> None: ...

    with acting_as(user("crm:read")), pytest.raises(ScopeDenied) as denied:
        write()
    assert denied.value.alternatives == (("crm:write",),)
    assert str(denied.value).endswith("; missing crm:write (" + write.resource + ")")


@given(
    st.lists(
        st.frozensets(st.sampled_from(["a:1", "b:2", "c:3", "d:4"]), min_size=1),
        min_size=1,
        max_size=4,
    ),
    st.frozensets(st.sampled_from(["a:1", "b:2", "c:3", "d:4"])),
)
def test_denial_text_covers_every_unsatisfied_alternative(
    alternatives: list[frozenset[str]], held: frozenset[str]
) -> None:
    rule = ScopeRule(alternatives)
    if rule.allows(held):
        return
    denial = ScopeDenied(
        "x",
        required=sorted(rule.closest(held)),
        missing=sorted(rule.closest(held) - held),
        alternatives=(alt - held for alt in rule.alternatives),
    )
    for alt in rule.alternatives:
        assert tuple(sorted(alt - held)) in denial.alternatives
        for scope in alt - held:
            assert scope in denial.needed
    # Nothing the principal already holds is reported as missing.
    for way in denial.alternatives:
        assert not set(way) & held
