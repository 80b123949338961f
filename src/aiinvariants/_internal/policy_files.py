"""Reading policy files and reporting validation errors for the policy module.

* :func:`read_policy_file`: size cap, UTF-8, YAML / TOML / JSON parsing with
  duplicate keys refused and YAML anchors, aliases and merge keys refused;
* :func:`validation_errors`: a pydantic ``ValidationError`` as
  ``(path, message)`` pairs that never echo an input value.

A policy file is edited by hand; a token or key pasted into the wrong place
must not end up in a log through an error message, so no message here
quotes the file's content (parser messages are rebuilt from their problem
and position, without the source line).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from aiinvariants._errors import MissingIntegrationError, PolicyError
from aiinvariants._internal import strict_json

if TYPE_CHECKING:
    from pydantic import ValidationError
    from yaml import SafeLoader

__all__ = ["MAX_POLICY_BYTES", "loc_part", "read_policy_file", "validation_errors"]

#: The largest policy file :func:`read_policy_file` reads (1 MiB). Policies
#: are a few KiB; the cap bounds parsing time and memory for a hostile file.
MAX_POLICY_BYTES: Final = 1024 * 1024

_FORMATS: Final = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}
_KEY_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


# -- ValidationError -> (path, message) -----------------------------------------

_SAFE_LOC_PART: Final = re.compile(r"[\w.:/@=,+\-\[\] ]{1,64}")
_FIELD_LIKE: Final = re.compile(r"[a-z_][a-z0-9_]{0,31}")


def _loc_part(part: object, *, rejected: bool) -> str:
    if isinstance(part, int) and not isinstance(part, bool):
        return str(part)
    text = str(part)
    if not text:
        return '""'
    # A mapping key is part of the location. A key that was rejected (an
    # unknown field, an invalid name) may be a value pasted in by mistake:
    # it is named only when it looks like a field name ("exposre"). Other
    # keys are named only when they look like names.
    if rejected:
        return text if _FIELD_LIKE.fullmatch(text) else "<invalid key>"
    return text if _SAFE_LOC_PART.fullmatch(text) else "<key>"


def loc_part(part: object) -> str:
    """A mapping key as :func:`validation_errors` names it in a path."""
    return _loc_part(part, rejected=False)


def _path(loc: Sequence[object], kind: str, union_tags: Collection[str]) -> str:
    parts: list[str] = []
    last = len(loc) - 1
    for index, part in enumerate(loc):
        # pydantic puts the tag of a discriminated union into the location
        # (audit.sinks.0.jsonl.path); the reader knows the kind, drop it.
        if (
            index > 0
            and isinstance(loc[index - 1], int)
            and isinstance(part, str)
            and part in union_tags
        ):
            continue
        rejected = (index == last and kind == "extra_forbidden") or (
            index < last and loc[index + 1] == "[key]"
        )
        parts.append(_loc_part(part, rejected=rejected))
    return ".".join(parts) or "(top level)"


_LIST: Final = (
    "must be a list, e.g. [a, b] (in YAML one '- item' per line), not a single value"
)
_REWORDED: Final = {
    "extra_forbidden": "unknown field (not part of the policy schema; a typo?)",
    "missing": "field required",
    # YAML, TOML and JSON have lists, not tuples or sets.
    "tuple_type": _LIST,
    "list_type": _LIST,
    "set_type": _LIST,
    "frozen_set_type": _LIST,
    # Strict scalars: a quoted "yes", "off", "0.6" or a 0/1 is not coerced.
    "bool_type": "must be true or false, unquoted (not a string or a number)",
    "int_type": "must be a whole number, unquoted (not a string)",
    "float_type": "must be a number, unquoted (not a string)",
}


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    message = str(error.get("msg", "invalid value"))
    if kind in _REWORDED:
        return _REWORDED[kind]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    elif kind == "assertion_error":
        message = message.removeprefix("Assertion failed, ")
    value = error.get("input")
    # Our own messages (value errors, "policy", "unknown_kind") never quote
    # their input; some of pydantic's built-in ones do (union tags). Belt
    # and braces: a built-in message that contains its input is replaced.
    ours = kind in ("value_error", "assertion_error", "policy", "unknown_kind")
    if not ours and isinstance(value, str) and len(value) >= 4 and value in message:
        return f"invalid value ({kind})"
    return message


def validation_errors(
    exc: ValidationError, *, union_tags: Collection[str] = ()
) -> list[tuple[str, str]]:
    """One ``(dotted_path, message)`` pair per problem, built from loc and msg."""
    return [
        (_path(error["loc"], error["type"], union_tags), _message(error))
        for error in exc.errors(include_url=False, include_context=False)
    ]


# -- reading files ------------------------------------------------------------------


def read_policy_file(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """Read and parse a policy file; return its display name and top mapping.

    Raises:
        PolicyError: the file is missing, unreadable, too large, not UTF-8,
            not parseable, has duplicate keys or YAML aliases, or its top
            level is not a mapping.
        MissingIntegrationError: a YAML file, and PyYAML is not installed.
    """
    name = os.fspath(path)
    if not isinstance(name, str):
        raise PolicyError("a policy path must be a str or os.PathLike[str]")
    suffix = os.path.splitext(name)[1].lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None:
        raise PolicyError(
            "unsupported policy file type; use .yaml, .yml, .toml or .json", file=name
        )
    text = _decode(_read_capped(name), name)
    parse: Callable[[str, str], object] = {
        "yaml": _parse_yaml,
        "toml": _parse_toml,
        "json": _parse_json,
    }[fmt]
    data = parse(text, name)
    if not isinstance(data, dict):
        what = "an empty document" if data is None else f"a {_type_name(data)}"
        raise PolicyError(f"the top level must be a mapping, not {what}", file=name)
    return name, data


def _type_name(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _read_capped(name: str) -> bytes:
    limit = MAX_POLICY_BYTES
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode):
            raise PolicyError("is a directory, not a policy file", file=name)
        if not stat.S_ISREG(info.st_mode):
            raise PolicyError("is not a regular file", file=name)
        if info.st_size > limit:
            raise PolicyError(f"policy file is larger than {limit} bytes", file=name)
        with open(name, "rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise PolicyError("policy file not found", file=name) from exc
    except PermissionError as exc:
        raise PolicyError(
            "cannot read policy file: permission denied", file=name
        ) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PolicyError(f"cannot read policy file: {reason}", file=name) from exc
    if len(raw) > limit:  # the file grew after stat()
        raise PolicyError(f"policy file is larger than {limit} bytes", file=name)
    return raw


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyError(
            f"policy file is not valid UTF-8 (line {line})", file=name
        ) from exc


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _safe_key(key: object) -> str:
    text = key if isinstance(key, str) else repr(key)
    return f" {text!r}" if _KEY_NAME.fullmatch(text) else ""


# -- YAML ----------------------------------------------------------------------------

_yaml_loader: type[SafeLoader] | None = None


def _strict_yaml_loader() -> type[SafeLoader]:
    """A SafeLoader that refuses duplicate keys, anchors, aliases and merges."""
    global _yaml_loader
    if _yaml_loader is not None:
        return _yaml_loader
    import yaml
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError
    from yaml.nodes import MappingNode, Node, ScalarNode

    merge_tag = "tag:yaml.org,2002:merge"

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent: Node | None, index: int) -> Node | None:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            # Refusing anchors and aliases outright rules out "billion laughs"
            # expansion and makes every value appear where it is written.
            if isinstance(event, yaml.AliasEvent):
                problem = "YAML aliases are not allowed in a policy"
            elif getattr(event, "anchor", None) is not None:
                problem = "YAML anchors are not allowed in a policy"
            else:
                return super().compose_node(parent, index)
            raise ComposerError(None, None, problem, event.start_mark)

        def construct_object(self, node: Node, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep=deep)
            except ValueError:
                # e.g. a date like 2027-13-01, or an integer beyond int()'s
                # digit limit: say where, not what.
                raise ConstructorError(
                    None, None, "invalid value", node.start_mark
                ) from None

        def construct_mapping(
            self, node: MappingNode, deep: bool = False
        ) -> dict[Any, Any]:
            seen: dict[object, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == merge_tag:
                    raise ConstructorError(
                        None,
                        None,
                        "YAML merge keys ('<<') are not allowed in a policy",
                        key_node.start_mark,
                    )
                if not isinstance(key_node, ScalarNode):
                    continue  # the base class refuses unhashable keys
                key = self.construct_object(key_node, deep=True)
                first = seen.get(key)
                if first is not None:
                    problem = f"duplicate key{_safe_key(key)} (first on line {first})"
                    raise ConstructorError(None, None, problem, key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    _yaml_loader = StrictLoader
    return StrictLoader


def _parse_yaml(text: str, name: str) -> object:
    try:
        import yaml
    except ImportError as exc:
        raise MissingIntegrationError(extra="yaml", package="pyyaml") from exc
    loader: SafeLoader | None = None
    try:
        # The reader checks for control characters as the loader is built.
        loader = _strict_yaml_loader()(text)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        for each in (exc.problem_mark, exc.context_mark):
            if each is not None:
                # str() of a YAML error quotes the offending source line;
                # drop the buffer so the chained exception cannot show it.
                each.buffer = None
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise PolicyError(
            f"YAML syntax error{where}: {problem or 'invalid YAML'}", file=name
        ) from exc
    except yaml.reader.ReaderError as exc:
        line, column = _line_col(text, exc.position)
        raise PolicyError(
            f"YAML syntax error at line {line}, column {column}: "
            "control characters are not allowed",
            file=name,
        ) from exc
    except yaml.YAMLError as exc:
        raise PolicyError("YAML syntax error", file=name) from exc
    except RecursionError as exc:
        raise PolicyError("YAML document is nested too deeply", file=name) from exc
    except ValueError as exc:  # e.g. an integer beyond int()'s digit limit
        raise PolicyError(
            "YAML document holds a value that cannot be read", file=name
        ) from exc
    finally:
        if loader is not None:
            loader.dispose()


# -- TOML ------------------------------------------------------------------------------


def _parse_toml(text: str, name: str) -> object:
    import tomllib

    try:
        data: object = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages name a key or one character at most, with the
        # position: "Cannot overwrite a value (at line 3, column 9)".
        raise PolicyError(f"TOML syntax error: {exc}", file=name) from exc
    except RecursionError as exc:
        raise PolicyError("TOML document is nested too deeply", file=name) from exc
    except ValueError as exc:
        raise PolicyError(
            "TOML document holds a value that cannot be read", file=name
        ) from exc
    return data


# -- JSON ------------------------------------------------------------------------------


def _parse_json(text: str, name: str) -> object:
    try:
        return strict_json.loads(text, max_bytes=MAX_POLICY_BYTES)
    except strict_json.StrictJSONError as exc:
        if exc.problem == "duplicate_key":
            raise PolicyError(
                f"JSON error: duplicate key{_safe_key(exc.key)} in the object "
                f"starting at line {exc.line}, column {exc.column}",
                file=name,
            ) from exc
        message = str(exc)
        if exc.problem != "syntax":
            message = f"JSON error: {message}"
        raise PolicyError(message, file=name) from exc
