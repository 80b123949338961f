"""load_policy: real files in YAML, TOML and JSON; every failure a PolicyError."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants._errors import MissingIntegrationError, PolicyError
from aiinvariants.policy import (
    BedrockGuardrailsConfig,
    JsonlSinkConfig,
    Policy,
    load_policy,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "policies"
EXAMPLE = FIXTURES / "example.yaml"
BAD = FIXTURES / "bad"
SRC = Path(__file__).resolve().parents[2] / "src"
SECRET = "sk-live-51HxQpA9zZ0SECRETvalue0123456789"
LIMIT = 1024 * 1024
HASH_PREFIX = "sha256:"


def failure(path: str | os.PathLike[str]) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return info.value


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def reordered(value: Any) -> Any:
    """The same data with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def as_json(value: Any) -> str:
    def default(obj: object) -> str:
        assert isinstance(obj, datetime.date)
        return obj.isoformat()

    return json.dumps(value, default=default, indent=1)


# -- good files ------------------------------------------------------------------------


def test_the_design_example_loads() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.app == "support-assistant"
    assert policy.exposure == "public"
    assert policy.clearance.resolve(authenticated=True, groups=["finance"]) == (
        "confidential"
    )
    assert policy.identity is not None
    assert policy.identity.algorithms == ("RS256", "ES256")
    assert policy.models.deny == ("*deepseek*",)
    assert policy.regions.declared == {
        "https://myres.openai.azure.com": "swedencentral"
    }
    assert policy.tools["refund_order"].data == "confidential"
    assert policy.tools["send_email"].data is None
    assert policy.tools["open_floodgate"].capabilities == ("life_safety",)
    assert policy.outputs.secrets.registered_env == ("STRIPE_KEY", "DB_PASSWORD")
    assert isinstance(policy.outputs.classifiers[0], BedrockGuardrailsConfig)
    approval = policy.use_cases["credit_scoring"].approval
    assert approval is not None
    assert approval.expires == datetime.date(2027, 6, 30)
    sink = policy.audit.sinks[0]
    assert isinstance(sink, JsonlSinkConfig)
    assert sink.sign_key_env == "AUDIT_SIGNING_KEY"
    assert policy.insecure_settings() == ()


def test_yaml_toml_and_json_of_the_same_content_hash_alike() -> None:
    hashes = {
        load_policy(FIXTURES / f"example.{suffix}").hash
        for suffix in ("yaml", "toml", "json")
    }
    assert len(hashes) == 1


def test_key_order_does_not_change_the_hash(tmp_path: Path) -> None:
    data = reordered(yaml.safe_load(EXAMPLE.read_text()))
    as_yaml = write(tmp_path / "reordered.yml", yaml.safe_dump(data, sort_keys=False))
    as_json_file = write(tmp_path / "reordered.json", as_json(data))
    expected = load_policy(EXAMPLE).hash
    assert load_policy(as_yaml).hash == expected
    assert load_policy(as_json_file).hash == expected
    assert list(data) != list(yaml.safe_load(EXAMPLE.read_text()))


def test_spelled_out_defaults_hash_like_omitted_ones(tmp_path: Path) -> None:
    policy = load_policy(EXAMPLE)
    full = json.loads(policy.canonical_json())
    assert len(json.dumps(full)) > len(
        json.dumps(yaml.safe_load(EXAMPLE.read_text()), default=str)
    )
    assert (
        load_policy(write(tmp_path / "full.yaml", yaml.safe_dump(full))).hash
        == policy.hash
    )
    assert (
        load_policy(write(tmp_path / "full.json", json.dumps(full))).hash == policy.hash
    )
    empty_hash = Policy().hash
    assert load_policy(write(tmp_path / "min.json", "{}")).hash == empty_hash
    assert load_policy(write(tmp_path / "min.toml", "version = 1\n")).hash == empty_hash
    assert load_policy(write(tmp_path / "min.yaml", "version: 1\n")).hash == empty_hash


def test_hash_is_stable_across_processes() -> None:
    code = (
        "import sys\n"
        "from aiinvariants.policy import Policy, load_policy\n"
        "print(load_policy(sys.argv[1]).hash, Policy().hash)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert result.stdout.split() == [load_policy(EXAMPLE).hash, Policy().hash]


@pytest.mark.parametrize("name", ["policy.yml", "POLICY.YAML", "policy.Json", "p.TOML"])
def test_suffixes_are_case_insensitive(tmp_path: Path, name: str) -> None:
    text = "version = 1\n" if name.lower().endswith(".toml") else '{"version": 1}'
    assert load_policy(write(tmp_path / name, text)) == Policy()


def test_a_path_string_and_a_bom_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"app": "crm"}')
    assert load_policy(str(path)).app == "crm"


def test_a_file_of_exactly_the_limit_loads(tmp_path: Path) -> None:
    head = "app: crm\n"
    path = write(tmp_path / "big.yaml", head + "#" * (LIMIT - len(head) - 1) + "\n")
    assert path.stat().st_size == LIMIT
    assert load_policy(path).app == "crm"


# -- bad files -------------------------------------------------------------------------

BAD_FILES = [
    ("unknown_key.yaml", ["exposre: unknown field"]),
    ("bad_tool_label.yaml", ["tools.refund_order.data: unknown classification label"]),
    ("alg_none.yaml", ["identity.algorithms.0:", "RFC 8725"]),
    ("alg_hs256.yaml", ["identity.algorithms.1:", "RFC 8725"]),
    ("leeway.yaml", ["identity.leeway_s: Input should be less than or equal to 60"]),
    ("wildcard_scope.yaml", ["tools.read_ticket.scopes.0: wildcard scopes"]),
    ("duplicate_key.yaml", ["duplicate key 'deny'", "line 5", "first on line 4"]),
    ("duplicate_key.json", ["duplicate key 'deny'", "line 2"]),
    ("duplicate_key.toml", ["TOML syntax error", "line 4"]),
    ("malformed.yaml", ["YAML syntax error at line 5, column 3"]),
    ("malformed.toml", ["TOML syntax error", "line 6"]),
    ("malformed.json", ["JSON syntax error at line 4, column 36"]),
    ("list_top.yaml", ["top level must be a mapping, not a list"]),
    ("empty.yaml", ["top level must be a mapping, not an empty document"]),
    (
        "unknown_sink.yaml",
        ["audit.sinks.1: kind must be one of: memory, logging, jsonl, otel"],
    ),
    ("jsonl_no_path.yaml", ["audit.sinks.0.path: field required"]),
    ("billion_laughs.yaml", ["anchors are not allowed", "line 2"]),
    ("merge_key.yaml", ["merge keys", "line 3"]),
    ("python_tag.yaml", ["YAML syntax error at line 1"]),
    ("bad_date.yaml", ["YAML syntax error at line 4", "invalid value"]),
    ("wrong_suffix.ini", ["unsupported policy file type"]),
]


@pytest.mark.parametrize(("name", "expected"), BAD_FILES)
def test_bad_files_name_the_file_and_the_problem(
    name: str, expected: list[str]
) -> None:
    path = BAD / name
    error = failure(path)
    text = str(error)
    assert error.file == str(path)
    assert text.startswith(str(path))
    for part in expected:
        assert part in text, text
    if "syntax error" in text or "duplicate" in text:
        assert error.__cause__ is not None  # chained for debugging


def test_validation_errors_are_structured() -> None:
    error = failure(BAD / "bad_tool_label.yaml")
    assert [path for path, _ in error.errors] == ["tools.refund_order.data"]
    assert error.message == "invalid policy (1 problem)"


def test_a_missing_file(tmp_path: Path) -> None:
    error = failure(tmp_path / "nope.yaml")
    assert "policy file not found" in str(error)
    assert isinstance(error.__cause__, FileNotFoundError)


def test_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    assert "directory" in str(failure(tmp_path / "dir.yaml"))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (
            OSError(5, "Input/output error"),
            "cannot read policy file: Input/output error",
        ),
    ],
)
def test_an_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, message: str
) -> None:
    from aiinvariants._internal import policy_files

    def refuse(*args: object, **kwargs: object) -> None:
        raise error

    path = write(tmp_path / "unreadable.yaml", "app: x\n")
    monkeypatch.setattr(policy_files, "open", refuse, raising=False)
    assert message in str(failure(path))


def test_a_too_large_file(tmp_path: Path) -> None:
    path = write(tmp_path / "big.yaml", "app: crm\n" + "#" * LIMIT + "\n")
    assert "larger than 1048576 bytes" in str(failure(path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("app: crm\nother: caf\xe9\n".encode("latin-1"))
    assert "not valid UTF-8 (line 2)" in str(failure(path))


def test_control_characters_in_yaml(tmp_path: Path) -> None:
    path = write(tmp_path / "ctl.yaml", "app: crm\nx: a\x00b\n")
    assert "line 2" in str(failure(path))


def test_several_yaml_documents(tmp_path: Path) -> None:
    path = write(tmp_path / "two.yaml", "app: a\n---\napp: b\n")
    assert "YAML syntax error at line 2" in str(failure(path))


@pytest.mark.parametrize(
    ("name", "text"), [("deep.json", "[" * 200_000), ("deep.yaml", "[" * 200_000)]
)
def test_deep_nesting(tmp_path: Path, name: str, text: str) -> None:
    error = failure(write(tmp_path / name, text))
    assert "nested too deeply" in str(error) or "syntax error" in str(error)


def test_huge_integers(tmp_path: Path) -> None:
    for name, text in [
        ("n.json", '{"version": ' + "9" * 5000 + "}"),
        ("n.yaml", "version: " + "9" * 5000 + "\n"),
        ("n.toml", "version = " + "9" * 5000 + "\n"),
    ]:
        assert isinstance(failure(write(tmp_path / name, text)), PolicyError)


def test_yaml_needs_pyyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(MissingIntegrationError) as info:
        load_policy(EXAMPLE)
    assert 'pip install "aiinvariants[yaml]"' in str(info.value)
    assert isinstance(info.value, ImportError)
    assert load_policy(FIXTURES / "example.json").app == "support-assistant"


# -- secrets in bad files --------------------------------------------------------------


def secret_files(tmp_path: Path) -> Iterator[Path]:
    bad: dict[str, Any] = {
        "exposure": SECRET,
        "outputs": {"secrets": {"registered_env": ["STRIPE_KEY", SECRET]}},
        "identity": {
            "issuer": f"https://user:{SECRET}@login.example.com",
            "audience": "api",
            "jwks_uri": "https://login.example.com/jwks",
            "algorithms": [SECRET],
            "leeway_s": SECRET,
        },
        "audit": {
            "sinks": [
                {"kind": SECRET},
                {"kind": "jsonl", "path": "a", "sign_key_env": SECRET},
            ]
        },
    }
    yield write(tmp_path / "secret.json", json.dumps(bad))
    yield write(tmp_path / "secret.yaml", yaml.safe_dump(bad))
    yield write(
        tmp_path / "secret.toml",
        f'exposure = "{SECRET}"\n[outputs.secrets]\nregistered_env = ["{SECRET}"]\n'
        f'[[audit.sinks]]\nkind = "{SECRET}"\n',
    )
    # Syntax errors on a line holding the secret: the source line is not quoted.
    yield write(tmp_path / "syntax.yaml", f"app: crm\nkey: {SECRET}: oops\n")
    yield write(tmp_path / "syntax.json", f'{{"app": "crm",\n "key": "{SECRET}" oops}}')
    yield write(tmp_path / "syntax.toml", f'app = "crm"\nkey = "{SECRET}" oops\n')
    yield write(tmp_path / "dup.yaml", f"app: crm\nx: {SECRET}\nx: {SECRET}\n")
    yield write(tmp_path / "tab.yaml", f"app: crm\n\tkey: {SECRET}\n")


def test_a_secret_in_a_bad_file_is_never_echoed(tmp_path: Path) -> None:
    for path in secret_files(tmp_path):
        error = failure(path)
        shown = "".join(traceback.format_exception(error))
        assert SECRET not in str(error), path.name
        assert SECRET not in shown, path.name
        assert "line" in str(error) or error.errors, path.name


# -- every input gives a Policy or a PolicyError ---------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["version", "app", "exposure", "classifications", "clearance", "identity", "models",
     "regions", "data_use", "capabilities", "tools", "outputs", "use_cases", "audit"]
)  # fmt: skip


MAPPINGS = st.dictionaries(KEYS, JSON_VALUES, max_size=5)


def outcome(path: Path | None = None, data: Any = None) -> Policy | PolicyError:
    try:
        return load_policy(path) if path is not None else Policy.from_dict(data)
    except PolicyError as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(MAPPINGS)
def test_any_mapping_gives_a_policy_or_a_policy_error(data: dict[str, Any]) -> None:
    result = outcome(data=data)
    if isinstance(result, Policy):
        assert HASH_PREFIX in result.hash
    else:
        assert result.errors


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from([".yaml", ".json", ".toml"]),
    st.text(max_size=200)
    | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    | MAPPINGS.map(lambda m: json.dumps(m))
    | MAPPINGS.map(lambda m: yaml.safe_dump(m)),
)
def test_any_file_gives_a_policy_or_a_policy_error(
    tmp_path: Path, suffix: str, text: str
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    result = outcome(path)
    assert isinstance(result, (Policy, PolicyError))
    if isinstance(result, PolicyError):
        assert result.file == str(path)


@st.composite
def mutated_example(draw: st.DrawFn) -> Any:
    """The example policy with one value somewhere replaced by random data."""
    data = json.loads(as_json(yaml.safe_load(EXAMPLE.read_text())))
    node = data
    for _ in range(draw(st.integers(0, 4))):
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        if isinstance(node[key], (dict, list)) and draw(st.booleans()):
            node = node[key]
            continue
        node[key] = draw(JSON_VALUES)
        break
    return data


@settings(max_examples=200, deadline=None)
@given(mutated_example())
def test_canonical_json_round_trips_to_the_same_hash(data: Any) -> None:
    result = outcome(data=data)
    if isinstance(result, Policy):
        again = Policy.from_dict(json.loads(result.canonical_json()))
        assert again == result
        assert again.hash == result.hash
