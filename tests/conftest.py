"""Project-wide test configuration.

In pytest's default ``prepend`` import mode this file also puts ``tests/`` on
``sys.path``, which makes helper modules next to it (``auth_support``)
importable from every test folder.
"""

from collections.abc import Iterator

import pytest

# auth_support: keys, token minting and the loopback JWKS server fixture
# (jwks_server) shared by the token-verification tests.
pytest_plugins = ["pytester", "auth_support"]


@pytest.fixture(scope="module", params=["re2", "hyperscan", "pure"])
def secrets_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests on every candidate search of ``SecretsFilter``:
    the RE2 and vectorscan pre-scans (the ``re2`` and ``hyperscan`` extras;
    skipped when not installed) and the pure-Python one (every filter's
    pre-scan off, as ``_use_native = False`` turns it off for one filter).
    Use it with ``pytestmark = pytest.mark.usefixtures("secrets_engine")``."""
    engine: str = request.param
    if engine != "pure":
        pytest.importorskip(engine)
    from aiinvariants.filters import SecretsFilter  # not at collection

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            SecretsFilter,
            "_native",
            lambda self: self._native_for(engine) if self._use_native else None,
        )
        yield engine
