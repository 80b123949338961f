"""The pytest plugin of aiinvariants (registered under the ``pytest11`` entry point).

It imports the library only when a fixture or marker is used, so installing
aiinvariants costs a pytest session nothing. It provides:

Markers:
    ``@pytest.mark.acting_as("alice", scopes="crm:read", groups=[...],
    tenant=..., clearance=...)`` runs the test as that authenticated
    principal; ``@pytest.mark.anonymous`` runs it as the anonymous one.

Fixtures:
    ``as_user`` — a factory: ``with as_user("alice", scopes="crm:read"):``
    ``as_anonymous`` — a factory: ``with as_anonymous():``
    ``capture_decisions`` — the decisions recorded during the test
    (an ``aiinvariants.testing.Decisions`` list).

Options:
    ``--aiinvariants-stats=PATH`` — every statistical assertion's result
    goes to PATH as a JSON line (see ``aiinvariants.testing._stats``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aiinvariants._principal import Principal, acting_as
    from aiinvariants.testing._assertions import Decisions


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--aiinvariants-stats",
        metavar="PATH",
        default=None,
        help="write every assert_holds_with_probability result to PATH "
        "(JSON Lines, emptied at the start of the session); read by "
        "'aiinvariants report AUDIT_LOG --stats PATH'",
    )


def _start_stats_file(config: pytest.Config) -> None:
    path = config.getoption("--aiinvariants-stats", default=None)
    if not path:
        return
    import os
    from pathlib import Path

    target = Path(path).resolve()
    if not hasattr(config, "workerinput"):  # the main process, not a worker
        try:
            target.write_text("", encoding="utf-8")
        except OSError as exc:
            raise pytest.UsageError(
                f"--aiinvariants-stats: cannot write {path}: {exc.strerror}"
            ) from None
    # An environment variable, so trials in subprocesses report too.
    os.environ["AIINVARIANTS_STATS_JSON"] = str(target)


def pytest_configure(config: pytest.Config) -> None:
    _start_stats_file(config)
    config.addinivalue_line(
        "markers",
        "acting_as(subject, *, scopes=(), groups=(), tenant=None, clearance=None): "
        "run the test as this authenticated principal (aiinvariants)",
    )
    config.addinivalue_line(
        "markers", "anonymous: run the test as the anonymous principal (aiinvariants)"
    )


def _user(
    subject: str,
    *,
    scopes: str | Iterable[str] = (),
    groups: Iterable[str] = (),
    tenant: str | None = None,
    clearance: str | None = None,
    issuer: str | None = "https://tests.invalid",
    claims: dict[str, Any] | None = None,
) -> Principal:
    from aiinvariants._principal import Principal

    return Principal(
        subject=subject,
        authenticated=True,
        scopes=scopes,
        groups=groups,
        tenant=tenant,
        clearance=clearance,
        issuer=issuer,
        claims=claims or {},
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    user = item.get_closest_marker("acting_as")
    anonymous = item.get_closest_marker("anonymous")
    if user is None and anonymous is None:
        return (yield)
    if user is not None and anonymous is not None:
        raise pytest.UsageError(
            f"{item.nodeid}: use either @pytest.mark.acting_as or "
            "@pytest.mark.anonymous, not both"
        )
    from aiinvariants._principal import ANONYMOUS, acting_as

    principal = ANONYMOUS if user is None else _user(*user.args, **user.kwargs)
    with acting_as(principal):
        return (yield)


@pytest.fixture
def as_user() -> Callable[..., acting_as]:
    """A factory of ``acting_as`` blocks for an authenticated test user.

    Without ``clearance=``, the user reads what the guard's policy grants its
    groups and scopes (``clearance`` map), like any principal without one.
    """
    from aiinvariants._principal import acting_as

    def make(subject: str = "user", **fields: Any) -> acting_as:
        return acting_as(_user(subject, **fields))

    return make


@pytest.fixture
def as_anonymous() -> Callable[[], acting_as]:
    """A factory of ``acting_as(ANONYMOUS)`` blocks."""
    from aiinvariants._principal import ANONYMOUS, acting_as

    return lambda: acting_as(ANONYMOUS)


@pytest.fixture
def capture_decisions() -> Generator[Decisions, None, None]:
    """Every decision recorded while the test runs, in order."""
    from aiinvariants.testing._assertions import capture_decisions as capturing

    with capturing() as decisions:
        yield decisions
