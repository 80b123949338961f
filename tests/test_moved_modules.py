"""The module paths made private in 0.2 still import, warn, and are the same module."""

from __future__ import annotations

import importlib
import sys

import pytest

from aiinvariants._internal.moved import MOVED, public_home


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_path_warns_and_is_the_new_module(old: str, new: str) -> None:
    module = importlib.import_module(new)
    sys.modules.pop(old, None)
    try:
        with pytest.warns(DeprecationWarning, match=f"{old} is private since 0.2"):
            assert importlib.import_module(old) is module
        assert module.__spec__ is not None
        assert module.__spec__.name == new
        assert module.__name__ == new
    finally:
        sys.modules.pop(old, None)


def test_public_home_is_public_and_importable() -> None:
    for old in MOVED:
        home = public_home(old)
        assert not any(part.startswith("_") for part in home.split("."))
        importlib.import_module(home)


def test_unknown_old_path_still_fails() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("aiinvariants.no_such_module")


def test_python_m_runs_the_command_by_its_public_and_its_old_name() -> None:
    import subprocess

    new = subprocess.run(
        [sys.executable, "-m", "aiinvariants", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert new.returncode == 0, new.stderr
    warned = ["-W", "always::DeprecationWarning"]
    old = subprocess.run(
        [sys.executable, *warned, "-m", "aiinvariants.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert old.returncode == 0, old.stderr
    assert old.stdout == new.stdout
    assert "aiinvariants.cli is private since 0.2" in old.stderr


def test_the_old_sections_path_still_serves_the_audit_section() -> None:
    # The audit section moved out of policy/_sections.py (a module split);
    # ``from aiinvariants.policy.sections import AuditPolicy`` keeps working
    # for the deprecation release, as the same class.
    import aiinvariants.policy as public

    with pytest.warns(DeprecationWarning, match="aiinvariants.policy"):
        old = importlib.import_module("aiinvariants.policy.sections")
    for name in ("AuditPolicy", "JsonlSinkConfig", "SinkConfig"):
        assert getattr(old, name) is getattr(public, name)
    with pytest.raises(AttributeError):
        old.NoSuchSection  # noqa: B018
