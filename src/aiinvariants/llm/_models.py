"""Model identifiers: normalization and the allow/deny decision (I5).

A model can be named many ways: ``deepseek-r1``, ``deepseek-ai/DeepSeek-R1``,
``us.deepseek.r1-v1:0``, an inference-profile ARN, ``deepseek-r1:14b`` on a
local runner, ``DeepSeek-R1-Distill-Llama-70B``… :func:`normalize_model` turns
any of them into a :class:`ModelId` carrying every *form* worth matching
(the raw id, the id without a Bedrock profile prefix, ``vendor/name``, the
bare name with and without its version suffix). :func:`decide_model` then
applies the policy:

* ids are compared in the project's canonical text form first (NFKC,
  lookalike letters folded to the ASCII letter they imitate, zero-width and
  format characters removed, case folded): ``deepseek`` spelt with a
  Cyrillic ``e`` (U+0435), in fullwidth letters or with a zero-width space
  inside is ``deepseek``. An id that is still not ASCII afterwards is
  unreadable (``model_unknown``): provider ids are ASCII, so a letter no
  table folds is a disguise;
* a model is denied when **any** form matches a deny pattern, or when a deny
  pattern names a *family* (``deepseek*``, ``*deepseek*``) and the family word
  appears in the model's vendor or name: a distilled or re-hosted model named
  after a banned family is that family. Derivatives published under another
  name (``MAI-DS-R1``, ``r1-1776``…) are judged as their base model too, from
  the sourced catalogue in :mod:`aiinvariants.llm._model_catalog`;
* a Bedrock ARN whose resource names no model (provisioned throughput,
  custom or imported models, application inference profiles, prompts) hides
  its family: it is allowed only when an allow pattern names ARNs
  (``arn:…``) and matches it, else it is ``model_unknown``;
* otherwise it is allowed only when some form matches an allow pattern;
* deny wins, and an id with no recognisable name is a denial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Final

from aiinvariants._errors import ModelDenied
from aiinvariants._internal.canonical import fold
from aiinvariants.llm._model_catalog import derived_from

__all__ = [
    "BEDROCK_PROFILE_PREFIXES",
    "ModelId",
    "decide_model",
    "family_words",
    "normalize_model",
]

#: Bedrock cross-region inference-profile prefixes -> the region patterns the
#: profile may route a request to.
BEDROCK_PROFILE_PREFIXES: Final[dict[str, tuple[str, ...]]] = {
    "us": ("us-*",),
    "us-gov": ("us-gov-*",),
    "eu": ("eu-*",),
    "apac": ("ap-*",),
    "jp": ("ap-northeast-*",),
    "au": ("ap-southeast-*",),
    "ca": ("ca-*", "us-*"),
    "global": ("*",),
}

_MAX_ID: Final = 512
# "-20240620", "@20240620", "-2024-08-06", "-0324", "-v1:0", ":0", "-latest"…
_VERSION_SUFFIX: Final = re.compile(
    r"(?:[-@](?:\d{8}|\d{4}-\d{2}-\d{2}|\d{4}|latest|preview|v\d+(?::\d+)?)"
    r"|:\d+|:[a-z0-9._-]+)+$"
)
_TOKEN_SPLIT: Final = re.compile(r"[^a-z0-9]+")
# "provider:model" / "provider@model": a word, then a model name that
# starts with a letter.
_PROVIDER_PREFIX: Final = re.compile(r"([a-z][a-z0-9_-]*)[:@]([a-z].*)")
#: Bedrock ARN resource types whose id names the model (or a system-defined
#: inference profile of one); every other resource type hides it.
_NAMED_ARN_TYPES: Final = frozenset({"foundation-model", "inference-profile"})


@dataclass(frozen=True)
class ModelId:
    """A model identifier, normalized.

    Attributes:
        raw: the identifier as the caller gave it.
        vendor: the vendor or publisher named in the id, if any.
        name: the model name without vendor, profile prefix and version.
        profile: the Bedrock inference-profile prefix (``eu``, ``global``…).
        forms: every canonical form the policy patterns are matched against.
        opaque: an ARN whose resource id does not name the model.
        derived_from: base models from the derivatives catalogue; the deny
            patterns judge them too.
        aliases: the forms of the id read as ``provider:model`` or
            ``provider@model`` (``openai:gpt-4o``), which some frameworks
            write; the deny patterns judge them too (never the allow ones).
    """

    raw: str
    vendor: str | None
    name: str
    profile: str | None
    forms: tuple[str, ...]
    opaque: bool = False
    derived_from: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def tokens(self) -> tuple[str, ...]:
        """The alphanumeric words of the vendor, the name, bases and aliases."""
        text = " ".join(
            [self.vendor or "", self.name, *self.derived_from, *self.aliases]
        )
        return tuple(t for t in _TOKEN_SPLIT.split(text) if t)

    def deny_forms(self) -> tuple[str, ...]:
        """The forms deny patterns are matched against (bases and aliases too)."""
        bases = [f for base in self.derived_from for f in (base, base.split("/")[-1])]
        return (*self.forms, *bases, *self.aliases)


@lru_cache(maxsize=1024)
def _normalize_cached(model: str) -> ModelId:
    return _normalize(model)


def normalize_model(model: str) -> ModelId:
    """Normalize a model id from any provider, router or runner.

    Handles case and whitespace, Bedrock ARNs and inference-profile prefixes
    (``us.``, ``eu.``, ``apac.``, ``global.``…), Bedrock ``vendor.model``
    ids, router and hub paths (``vendor/model``, ``@cf/vendor/model``,
    ``accounts/x/models/model``, ``hf.co/org/model``), OpenAI fine-tune ids
    (``ft:base:org::id``) and version suffixes (dates, ``-v1:0``, ``:14b``,
    ``@20240620``). The id is first put in canonical form (see the module
    docstring). Results are cached (bounded).

    Raises:
        ModelDenied: the id is empty, too long, not a string, or not ASCII
            once canonical (``model_unknown``): what cannot be named cannot
            be allowed.
    """
    if not isinstance(model, str) or not model.strip() or len(model) > _MAX_ID:
        raise ModelDenied("the model id is missing or unreadable", code="model_unknown")
    return _normalize_cached(model)


def _normalize(model: str) -> ModelId:
    """:func:`normalize_model` of a non-empty id of bounded length."""
    raw = model
    text = fold(model)
    if not text or not text.isascii() or not text.isprintable():
        raise ModelDenied(
            "the model id holds characters no provider uses in an id",
            code="model_unknown",
        )
    aliases: tuple[str, ...] = ()
    prefixed = _PROVIDER_PREFIX.fullmatch(text)
    if prefixed and prefixed.group(1) not in {"ft", "arn"}:
        # "openai:gpt-4o" is gpt-4o to a deny pattern ("llama3:8b", a tag
        # starting with a digit, is not read this way).
        other = _normalize(prefixed.group(2))
        aliases = (*other.forms, *other.aliases)
    forms: list[str] = [text]
    if text.startswith("ft:"):
        # ft:gpt-4o-mini-2024-07-18:org:name:id -> the base model
        text = text[3:].split(":", 1)[0]
        forms.append(text)
    opaque = False
    if text.startswith("arn:"):
        # arn:partition:service:region:account:type/id
        resource = text.split(":", 5)[5] if text.count(":") >= 5 else ""
        kind, slash, ident = resource.partition("/")
        opaque = not slash or kind not in _NAMED_ARN_TYPES or not ident
        text = ident if not opaque else resource.rsplit("/", 1)[-1]
        forms.append(text)
    text = text.removeprefix("azureml://")
    # Path-like ids: keep the last segment as the name, the one before as vendor.
    vendor: str | None = None
    if "/" in text:
        parts = [p for p in text.split("/") if p]
        if not parts:
            raise ModelDenied("the model id has no name", code="model_unknown")
        text = parts[-1]
        for part in reversed(parts[:-1]):
            if part not in {"models", "publishers", "registries", "accounts"}:
                vendor = part.lstrip("@")
                break
    profile: str | None = None
    head, dot, rest = text.partition(".")
    if dot and head in BEDROCK_PROFILE_PREFIXES and "." in rest:
        profile = head
        text = rest
        forms.append(text)
    head, dot, rest = text.partition(".")
    if (
        dot
        and re.fullmatch(r"[a-z][a-z0-9-]*", head)
        and rest
        and not rest[0].isdigit()
        # Bedrock "vendor.model-v1:0" (not "gpt-4.1" nor "deepseek-v3.1").
        and not re.search(r"\d$", head)
    ):
        vendor = vendor or head
        text = rest
    if not text:
        raise ModelDenied("the model id has no name", code="model_unknown")
    versioned = text
    name = _VERSION_SUFFIX.sub("", text) or text
    forms += [versioned, name]
    if vendor:
        forms += [f"{vendor}/{versioned}", f"{vendor}/{name}", f"{vendor}.{versioned}"]
    unique = tuple(dict.fromkeys(f for f in forms if f))
    return ModelId(
        raw=raw,
        vendor=vendor,
        name=name,
        profile=profile,
        forms=unique,
        opaque=opaque,
        derived_from=tuple(
            dict.fromkeys(
                b for f in (versioned, name, forms[0]) for b in derived_from(f)
            )
        ),
        aliases=aliases,
    )


def family_words(pattern: str) -> str | None:
    """The family a deny pattern names (``deepseek*`` -> ``deepseek``), if any.

    Only a pattern that is one alphabetic word with a trailing wildcard
    (optionally a leading one too) names a family; ``gpt-4o-mini`` does not.
    """
    if not pattern.endswith("*"):
        return None
    core = pattern.strip("*").strip("-_./")
    if len(core) >= 3 and core.isalpha():
        return core
    return None


def _has_family(model: ModelId, word: str) -> bool:
    tokens = model.tokens()
    if any(t.startswith(word) for t in tokens):
        return True
    # "Deep-Seek", "deep_seek", "d/e/e/p/s/e/e/k": the word glued back
    # together, in the name or anywhere in the whole id.
    return len(word) >= 5 and (
        word in "".join(tokens) or word in "".join(_TOKEN_SPLIT.split(model.forms[0]))
    )


def decide_model(
    model: str | ModelId, *, allow: tuple[str, ...], deny: tuple[str, ...]
) -> ModelId:
    """Apply allow/deny patterns to a model id; deny wins.

    Returns:
        the normalized id, when the model is allowed.

    Raises:
        ModelDenied: ``model_denied`` (a deny pattern or a denied family),
            ``model_not_allowed`` (no allow pattern matches) or
            ``model_unknown`` (the id cannot be read).
    """
    if isinstance(model, str):
        try:
            return _decide_cached(model, tuple(allow), tuple(deny))
        except TypeError:  # unhashable patterns: decide without the cache
            pass
    return _decide(model, tuple(allow), tuple(deny))


@lru_cache(maxsize=1024)
def _decide_cached(
    model: str, allow: tuple[str, ...], deny: tuple[str, ...]
) -> ModelId:
    # Only allowed ids are cached (a denial raises); patterns are policy
    # strings, so the key space is the ids an app calls.
    return _decide(model, allow, deny)


@lru_cache(maxsize=512)
def _fold_pattern(pattern: str) -> str:
    return fold(pattern)


def _decide(
    model: str | ModelId, allow: tuple[str, ...], deny: tuple[str, ...]
) -> ModelId:
    mid = model if isinstance(model, ModelId) else normalize_model(model)
    deny_forms = mid.deny_forms()
    for pattern in deny:
        folded = _fold_pattern(pattern)
        word = family_words(folded)
        if any(fnmatchcase(f, folded) for f in deny_forms) or (
            word is not None and _has_family(mid, word)
        ):
            raise ModelDenied(
                f"model family denied by policy pattern {pattern!r}",
                code="model_denied",
                resource=mid.name,
            )
    allow = tuple(_fold_pattern(p) for p in allow)
    if mid.opaque:
        if not any(fnmatchcase(mid.forms[0], p) for p in allow if p.startswith("arn:")):
            raise ModelDenied(
                "this ARN does not name its model, so its family cannot be "
                "known; list the ARN under models.allow to allow it",
                code="model_unknown",
                resource=mid.name,
            )
        return mid
    if not any(fnmatchcase(f, p) for p in allow for f in mid.forms):
        raise ModelDenied(
            "model is not in the policy's allow-list",
            code="model_not_allowed",
            resource=mid.name,
        )
    return mid
