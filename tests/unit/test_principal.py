from __future__ import annotations

import asyncio
import pickle
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from aiinvariants import (
    ANONYMOUS,
    PolicyError,
    Principal,
    PrincipalExecutor,
    acting_as,
    carry_principal,
    current_correlation_id,
    current_principal,
)

TOKEN = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJlLXZhbHVl"


def alice(**overrides: object) -> Principal:
    fields: dict[str, object] = {
        "subject": "alice",
        "authenticated": True,
        "scopes": "crm:read tickets:read",
        "groups": ["employees"],
        "tenant": "acme",
        "clearance": "internal",
        "token": TOKEN,
    }
    fields.update(overrides)
    return Principal.model_validate(fields)


def test_anonymous_is_the_default_and_unauthenticated() -> None:
    assert ANONYMOUS.authenticated is False
    assert ANONYMOUS.is_anonymous
    assert ANONYMOUS.scopes == frozenset()
    assert current_principal() is ANONYMOUS


def test_scope_string_is_split_as_rfc6749_says() -> None:
    assert alice().scopes == frozenset({"crm:read", "tickets:read"})
    assert alice(scopes=["a", "b"]).scopes == frozenset({"a", "b"})


@pytest.mark.parametrize(
    "bad", [['crm"read'], ["crm read"], ["a\\b"], ["\x00"], [""], [3], {"a": 1}]
)
def test_malformed_scopes_are_refused(bad: object) -> None:
    with pytest.raises(ValidationError):
        alice(scopes=bad)


def test_groups_as_a_bare_string_are_refused_not_split_into_letters() -> None:
    with pytest.raises(ValidationError, match="not a string"):
        alice(groups="admins")


@pytest.mark.parametrize(
    "authority", [{"scopes": "crm:read"}, {"groups": ["admins"]}, {"clearance": "x"}]
)
def test_unauthenticated_principal_cannot_carry_authority(
    authority: dict[str, object],
) -> None:
    with pytest.raises(ValidationError, match="unauthenticated"):
        Principal.model_validate({"subject": "mallory", **authority})


def test_authenticated_defaults_to_false() -> None:
    assert Principal(subject="someone").authenticated is False


def test_principal_is_immutable() -> None:
    who = alice()
    with pytest.raises(ValidationError):
        who.subject = "mallory"  # type: ignore[misc]
    with pytest.raises(TypeError):
        who.claims["admin"] = True  # type: ignore[index]
    assert isinstance(who.scopes, frozenset)


def test_token_never_appears_in_repr_str_or_serialisation() -> None:
    who = alice(claims={"sub": "alice"})
    texts = [
        repr(who),
        str(who),
        who.model_dump_json(),
        repr(who.model_dump()),
        repr(who.model_dump(mode="json")),
        repr(acting_as(who)),
    ]
    for text in texts:
        assert TOKEN not in text
        assert "c2VjcmV0" not in text
    assert who.raw_token() == TOKEN
    assert "token" not in who.model_dump()


def test_token_never_appears_in_validation_errors() -> None:
    with pytest.raises(ValidationError) as info:
        Principal.model_validate(
            {"subject": "", "token": TOKEN, "scopes": [TOKEN + '"']}
        )
    assert TOKEN not in str(info.value)


def test_pickled_principal_keeps_secret_hidden() -> None:
    who = pickle.loads(pickle.dumps(alice()))  # noqa: S301 - our own object
    assert who == alice()
    assert TOKEN not in repr(who)


def test_equal_principals_hash_equal() -> None:
    assert hash(alice()) == hash(alice())
    assert alice() != alice(subject="bob")
    assert alice().has_scopes("crm:read")
    assert not alice().has_scopes("crm:read", "crm:write")
    assert not ANONYMOUS.has_scopes()


def test_acting_as_sets_and_restores() -> None:
    with acting_as(alice()) as who:
        assert current_principal() is who
        with acting_as(ANONYMOUS):
            assert current_principal() is ANONYMOUS
        assert current_principal() is who
    assert current_principal() is ANONYMOUS


def test_acting_as_restores_after_an_exception() -> None:
    with pytest.raises(RuntimeError), acting_as(alice()):
        raise RuntimeError("boom")
    assert current_principal() is ANONYMOUS


def test_the_same_acting_as_object_can_be_nested() -> None:
    block = acting_as(alice())
    with block, block:
        assert current_principal().subject == "alice"
    assert current_principal() is ANONYMOUS


@pytest.mark.parametrize("bad", ["alice", {"subject": "alice"}, None])
def test_acting_as_refuses_anything_but_a_principal(bad: object) -> None:
    with pytest.raises(PolicyError, match="needs a Principal"):
        acting_as(bad)  # type: ignore[arg-type]


def test_async_with_acting_as() -> None:
    async def main() -> str:
        async with acting_as(alice()):
            await asyncio.sleep(0)
            return current_principal().subject

    assert asyncio.run(main()) == "alice"
    assert current_principal() is ANONYMOUS


def test_correlation_id_is_made_once_per_outer_block() -> None:
    assert current_correlation_id() is None
    with acting_as(alice()):
        outer = current_correlation_id()
        assert outer
        with acting_as(ANONYMOUS):
            assert current_correlation_id() == outer
        with acting_as(ANONYMOUS, correlation_id="req-7"):
            assert current_correlation_id() == "req-7"
    with acting_as(alice()):
        assert current_correlation_id() != outer
    assert current_correlation_id() is None


def test_plain_thread_pool_loses_the_principal_and_the_helpers_carry_it() -> None:
    def who() -> str:
        return current_principal().subject

    with acting_as(alice()):
        with ThreadPoolExecutor(max_workers=1) as plain:
            # The hazard the helpers exist for: contextvars stay behind.
            assert plain.submit(who).result() == "anonymous"
            assert plain.submit(carry_principal(who)).result() == "alice"
        with PrincipalExecutor(max_workers=2) as pool:
            assert pool.submit(who).result() == "alice"
            assert list(pool.map(lambda _: who(), range(4))) == ["alice"] * 4


def test_carried_function_keeps_the_principal_of_wrap_time() -> None:
    with acting_as(alice()):
        carried = carry_principal(current_principal)
    with acting_as(alice(subject="bob")):
        assert carried().subject == "alice"


def test_asyncio_to_thread_carries_the_principal() -> None:
    async def main() -> str:
        with acting_as(alice()):
            return await asyncio.to_thread(lambda: current_principal().subject)

    assert asyncio.run(main()) == "alice"
