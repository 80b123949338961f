"""Project-wide test configuration.

In pytest's default ``prepend`` import mode this file also puts ``tests/`` on
``sys.path``, which makes helper modules next to it (``auth_support``)
importable from every test folder.
"""

# auth_support: keys, token minting and the loopback JWKS server fixture
# (jwks_server) shared by the token-verification tests.
pytest_plugins = ["pytester", "auth_support"]
