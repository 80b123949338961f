"""The value types of :mod:`aiinvariants.policy`: checks and annotated types.

Each check takes an already type-checked value and returns it (possibly
normalised) or raises ``ValueError`` with a message that never quotes the
value: a token or key pasted into the wrong field of a policy must not end
up in a log through an error message. The annotated types at the end bind
the checks to pydantic; ``policy.py`` builds its models from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from aiinvariants._internal.frozen import FrozenDict, freeze

__all__ = [
    "DEFAULT_CLASSIFICATIONS",
    "Action",
    "Algorithm",
    "Audience",
    "Capability",
    "Classifications",
    "EnvName",
    "Frozen",
    "FrozenDict",
    "Glob",
    "Issuer",
    "Label",
    "Name",
    "NonEmptyUnique",
    "PIIKind",
    "Region",
    "Scope",
    "Seconds",
    "Text",
    "Unique",
    "Url",
    "check_algorithm",
    "check_audience",
    "check_classifications",
    "check_email",
    "check_env_name",
    "check_glob",
    "check_identifier",
    "check_issuer",
    "check_jwks",
    "check_label",
    "check_labels_known",
    "check_logger_name",
    "check_name",
    "check_non_empty_unique",
    "check_region",
    "check_scope",
    "check_text",
    "check_unique",
    "check_url",
    "freeze",
    "is_label",
    "raise_errors",
    "repeated_indexes",
    "unknown_label",
]


#: The default classification labels, lowest first.
DEFAULT_CLASSIFICATIONS: Final[tuple[str, ...]] = (
    "public",
    "internal",
    "confidential",
    "restricted",
)


# -- raising several located errors from one validator ------------------------


def raise_errors(
    title: str, problems: Sequence[tuple[tuple[str | int, ...], str]]
) -> None:
    """Raise one pydantic ``ValidationError`` holding every problem, if any.

    pydantic merges a ``ValidationError`` raised inside a validator into the
    outer one and prefixes each location, so a validator can report several
    problems, each at its own field path.
    """
    if not problems:
        return
    from pydantic import ValidationError
    from pydantic_core import InitErrorDetails, PydanticCustomError

    details = [
        InitErrorDetails(
            type=PydanticCustomError(
                "policy", message.replace("{", "(").replace("}", ")")
            ),
            loc=loc,
            input=None,
        )
        for loc, message in problems
    ]
    raise ValidationError.from_exception_data(title, details, hide_input=True)


# -- value checks used by the model's annotated types --------------------------

_LABEL: Final = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_LOGGER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACE: Final = re.compile(r"\s")


def is_label(value: object) -> bool:
    """True when ``value`` has the shape of a classification label."""
    return isinstance(value, str) and _LABEL.fullmatch(value) is not None


def check_label(value: str) -> str:
    """A classification label: lower-case identifier, at most 64 characters."""
    if not _LABEL.fullmatch(value):
        raise ValueError(
            "a classification label must be a lower-case identifier "
            "(a-z, digits, '_' or '-', starting with a letter, at most 64 characters)"
        )
    return value


def check_identifier(value: str) -> str:
    """A capability name: the same shape as a label."""
    if not _LABEL.fullmatch(value):
        raise ValueError(
            "must be a lower-case identifier "
            "(a-z, digits, '_' or '-', starting with a letter, at most 64 characters)"
        )
    return value


def check_name(value: str) -> str:
    """A tool or use-case name: letters, digits, ``_ . -``; at most 128."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            "a name must be 1-128 characters of letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    return value


def check_env_name(value: str) -> str:
    """The NAME of an environment variable; a policy never holds the value."""
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the name of an environment variable (letters, digits and '_'), "
            "never a secret value: a policy holds no secrets"
        )
    return value


def check_logger_name(value: str) -> str:
    """A dotted Python logger name."""
    if len(value) > 256 or not _LOGGER.fullmatch(value):
        raise ValueError("must be a dotted logger name such as 'aiinvariants.audit'")
    return value


def check_text(value: str, *, max_length: int = 256) -> str:
    """Free text: non-empty, bounded, no control characters, no outer spaces."""
    if not value or len(value) > max_length:
        raise ValueError(f"must be 1-{max_length} characters")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


def check_glob(value: str) -> str:
    """A glob pattern (``*`` and ``?``), compared lower-case."""
    if not value or len(value) > 256 or _SPACE.search(value) or _CONTROL.search(value):
        raise ValueError("a pattern must be 1-256 characters without whitespace")
    return value.lower()


def check_email(value: str) -> str:
    """An e-mail-like address (``someone@example.com``)."""
    if len(value) > 254 or not _EMAIL.fullmatch(value) or _CONTROL.search(value):
        raise ValueError("must be an e-mail address such as legal@example.com")
    return value


def check_url(value: str, *, query: bool = True) -> str:
    """An ``https`` URL, or ``http`` to a loopback host (local development).

    The library's one URL rule (:mod:`aiinvariants._internal.urls`): plain
    http to any other host would let anyone on the network path swap the
    keys or answers the library trusts; credentials in the URL are refused
    (a policy holds no secrets).
    """
    from aiinvariants._internal.urls import url_problem

    problem = url_problem(value, query=query)
    if problem is not None:
        raise ValueError(problem)
    return value


# Members of a JWK that carry private or symmetric key material (RFC 7517/7518).
_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PUBLIC_KTY: Final = frozenset({"RSA", "EC", "OKP"})


def check_jwks(value: Mapping[str, Any]) -> FrozenDict[str, Any]:
    """An inline JWK Set of public keys, returned deep-frozen.

    Refuses symmetric (``oct``) keys and any private key member: a policy is
    not a place for secrets, and an HMAC key next to an RS256 configuration
    is the ingredient of algorithm-confusion attacks.
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if set(value) != {"keys"}:
        problems.append(((), "an inline JWKS must have exactly one member, 'keys'"))
    keys = value.get("keys")
    if not isinstance(keys, list) or not keys:
        problems.append((("keys",), "must be a non-empty list of JWKs"))
    else:
        for index, key in enumerate(keys):
            loc: tuple[str | int, ...] = ("keys", index)
            problem = _jwk_problem(key)
            if problem:
                problems.append((loc, problem))
    raise_errors("jwks", problems)
    frozen = freeze(value)
    assert isinstance(frozen, FrozenDict)  # noqa: S101 - freeze keeps mappings
    return frozen


def _jwk_problem(key: object) -> str | None:
    if not isinstance(key, Mapping) or not key:
        return "a JWK must be a non-empty mapping"
    if len(key) > 32:
        return "a JWK has at most 32 members"
    for member, item in key.items():
        if not isinstance(member, str):
            return "JWK member names must be strings"
        if isinstance(item, list):
            if not all(isinstance(part, str) for part in item):
                return "JWK list members must hold only strings"
        elif not isinstance(item, (str, int, bool)) or isinstance(item, float):
            return "JWK members must be strings, integers, booleans or lists of strings"
    if key.get("kty") == "oct" or _PRIVATE_JWK_MEMBERS & set(key):
        return (
            "holds symmetric or private key material; an inline JWKS lists public "
            "keys only (a policy never holds secrets)"
        )
    if key.get("kty") not in _PUBLIC_KTY:
        return "kty must be RSA, EC or OKP"
    return None


def repeated_indexes(items: Iterable[str]) -> list[int]:
    """Indexes of the items that repeat an earlier one."""
    seen: set[str] = set()
    repeats: list[int] = []
    for index, item in enumerate(items):
        if item in seen:
            repeats.append(index)
        seen.add(item)
    return repeats


def check_scope(value: str) -> str:
    """An RFC 6749 scope token, and no wildcard."""
    from aiinvariants._principal import validate_scope_token

    validate_scope_token(value)
    if "*" in value:
        raise ValueError(
            "wildcard scopes are not allowed: name each scope a call needs"
        )
    return value


def check_issuer(value: str) -> str:
    """An issuer identifier: an https URL without query or fragment (RFC 8414).

    It is compared with a token's ``iss`` exactly, so it is kept as written.
    """
    return check_url(value, query=False)


def check_region(value: str) -> str:
    """A region name such as ``eu-central-1``, lower-cased."""
    value = check_glob(value)
    if not value.replace("-", "").replace("_", "").isalnum() or not value.isascii():
        raise ValueError("a region is letters, digits and '-', e.g. eu-central-1")
    return value


def check_unique(values: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse repeated entries, each reported at its own index."""
    problems = [((i,), "repeats an earlier entry") for i in repeated_indexes(values)]
    raise_errors("unique", problems)
    return values


def check_non_empty_unique(values: tuple[str, ...]) -> tuple[str, ...]:
    """At least one entry, none repeated."""
    if not values:
        raise ValueError("must list at least one entry")
    return check_unique(values)


def check_audience(value: object) -> object:
    """A string, or a non-empty list of strings (made a tuple); each ≤ 2048."""
    items = [value] if isinstance(value, str) else value
    if (
        isinstance(items, (list, tuple))
        and items
        and all(isinstance(item, str) for item in items)
    ):
        for item in items:
            check_text(item, max_length=2048)
        return value if isinstance(value, str) else tuple(items)
    raise ValueError("audience must be a string or a non-empty list of strings")


def check_algorithm(value: object) -> object:
    """Refuse ``none`` and HMAC algorithms with a message that says why."""
    if isinstance(value, str) and (
        value.strip().lower() == "none" or value.strip().upper().startswith("HS")
    ):
        raise ValueError(
            "'none' and HMAC (HS*) algorithms are refused (RFC 8725, JWT Best "
            "Current Practices): 'none' accepts unsigned tokens, and an HS* "
            "verifier can be fed tokens signed with a public key; use RS*, PS*, "
            "ES* or EdDSA"
        )
    return value


def check_classifications(values: tuple[str, ...]) -> tuple[str, ...]:
    """Non-empty, unique, and starting with ``public``."""
    if not values:
        raise ValueError("at least one classification label is needed")
    if values[0] != "public":
        raise ValueError(
            "the first (lowest) classification must be 'public': it is what "
            "an anonymous user may reach"
        )
    return check_unique(values)


def unknown_label(labels: Sequence[str]) -> str:
    """The message for a label that is not one of ``labels``."""
    return "unknown classification label; the labels are: " + ", ".join(labels)


def check_labels_known(
    title: str,
    labels: Sequence[str],
    used: Iterable[tuple[tuple[str | int, ...], str | None]],
) -> None:
    """Report every ``(location, label)`` whose label is not one of ``labels``."""
    problem = unknown_label(labels)
    raise_errors(
        title,
        [
            (loc, problem)
            for loc, label in used
            if label is not None and label not in labels
        ],
    )


def _frozen_dict(value: dict[Any, Any]) -> dict[Any, Any]:
    return FrozenDict(value)


# -- annotated types ---------------------------------------------------------------


def ms_to_s(ms: object) -> float:
    """A former ``*_ms`` setting (a positive whole number) in seconds."""
    if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
        raise ValueError("must be a positive whole number of milliseconds")
    return ms / 1000


# -- the vocabulary the policy and the output filters share (defined once) ------

Action = Literal["block", "redact", "flag"]
"""What a filter does with a finding: refuse the output, mask it, or record it."""

PIIKind = Literal["email", "phone", "payment_card", "iban", "national_id"]
"""The kinds of personal data the PII filter knows."""

Frozen = AfterValidator(_frozen_dict)
Label = Annotated[str, AfterValidator(check_label)]
Capability = Annotated[str, AfterValidator(check_identifier)]
Name = Annotated[str, AfterValidator(check_name)]
EnvName = Annotated[str, AfterValidator(check_env_name)]
Text = Annotated[str, AfterValidator(check_text)]
Glob = Annotated[str, AfterValidator(check_glob)]
Url = Annotated[str, AfterValidator(check_url)]
Issuer = Annotated[str, AfterValidator(check_issuer)]
Scope = Annotated[str, AfterValidator(check_scope)]
Region = Annotated[str, AfterValidator(check_region)]
Seconds = Annotated[float, Field(gt=0, le=60, allow_inf_nan=False, strict=True)]
Unique = AfterValidator(check_unique)
NonEmptyUnique = AfterValidator(check_non_empty_unique)
Classifications = Annotated[tuple[Label, ...], AfterValidator(check_classifications)]
Audience = Annotated[str | tuple[str, ...], BeforeValidator(check_audience)]
Algorithm = BeforeValidator(check_algorithm)
