"""Red team (issue #11 A): policy fields are strict, ``version`` included.

``version: Literal[1]`` took ``true`` and ``1.0`` (both equal 1) from YAML,
TOML and JSON: the one field left to pydantic's lax coercion. A policy file
with either is now refused with every problem listed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiinvariants import Policy, PolicyError, load_policy

FILES = {
    "yaml_true": ("policy.yaml", "version: true\n"),
    "yaml_float": ("policy.yaml", "version: 1.0\n"),
    "toml_true": ("policy.toml", "version = true\n"),
    "toml_float": ("policy.toml", "version = 1.0\n"),
    "json_true": ("policy.json", '{"version": true}'),
    "json_float": ("policy.json", '{"version": 1.0}'),
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_version_is_not_coerced(case: str, tmp_path: Path) -> None:
    name, text = FILES[case]
    target = tmp_path / name
    target.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(target)
    assert "version" in [path for path, _ in info.value.errors]


def test_version_one_still_loads() -> None:
    assert Policy.from_dict({"version": 1}).version == 1
