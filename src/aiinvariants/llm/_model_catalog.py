"""Known derivatives of model families published under another name (I5).

A deny pattern names a family (``deepseek*``); the family word catches every
id that carries it (``DeepSeek-R1-Distill-Llama-70B``, ``deepseek.r1-v1:0``).
Some derivatives carry no such word: a post-train or fine-tune published by
another vendor under its own name. This catalogue lists them, each with the
model it derives from and the publisher's own page that says so. An id that
matches an entry is also judged as its base model by the deny patterns
(never by the allow patterns): ``deny: [deepseek*]`` denies ``MAI-DS-R1``.

Entries match on the *squashed* model name (lower-case letters and digits
only, vendor and version removed), by prefix, so ``MAI_DS_R1``,
``mai-ds-r1-fp8`` and ``microsoft/MAI-DS-R1`` are the same entry.

The list is a catalogue of public facts, not an allow- or deny-list: it
widens what a deny pattern catches and never allows anything. To add an
entry, cite the publisher's model card or documentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["DERIVATIVES", "Derivative", "derived_from"]


@dataclass(frozen=True)
class Derivative:
    """One derivative published under a name that hides its family.

    Attributes:
        prefix: the squashed name prefix the entry matches (``maidsr1``).
        base: the model it derives from, as ``vendor/name``.
        source: the publisher's page stating the derivation.
    """

    prefix: str
    base: str
    source: str


#: Derivatives whose names do not carry their family's word.
DERIVATIVES: Final[tuple[Derivative, ...]] = (
    # Microsoft's post-train of DeepSeek-R1 (model card: "a DeepSeek-R1
    # reasoning model that has been post-trained by the Microsoft AI team").
    Derivative(
        "maidsr1",
        "deepseek-ai/deepseek-r1",
        "https://huggingface.co/microsoft/MAI-DS-R1",
    ),
    # Perplexity's post-train of DeepSeek-R1, and its 70B distill.
    Derivative(
        "r11776",
        "deepseek-ai/deepseek-r1",
        "https://huggingface.co/perplexity-ai/r1-1776",
    ),
    # Agentica's fine-tunes of DeepSeek-R1-Distill-Qwen (model cards list
    # the base model).
    Derivative(
        "deepscaler",
        "deepseek-ai/deepseek-r1-distill-qwen-1.5b",
        "https://huggingface.co/agentica-org/DeepScaleR-1.5B-Preview",
    ),
    Derivative(
        "deepcoder",
        "deepseek-ai/deepseek-r1-distill-qwen-14b",
        "https://huggingface.co/agentica-org/DeepCoder-14B-Preview",
    ),
    # NVIDIA's DLER research model, trained from DeepSeek-R1-Distill-Qwen.
    Derivative(
        "dlerr1",
        "deepseek-ai/deepseek-r1-distill-qwen-1.5b",
        "https://huggingface.co/nvidia/DLER-R1-1.5B-Research",
    ),
    # Qwen's own reasoning models, published without the word "qwen".
    Derivative("qwq", "qwen/qwq-32b", "https://huggingface.co/Qwen/QwQ-32B"),
    Derivative(
        "qvq", "qwen/qvq-72b-preview", "https://huggingface.co/Qwen/QVQ-72B-Preview"
    ),
    # Qwen's code model: "qwen" inside a word is too short a word for the
    # glued-together search, so it is listed.
    Derivative(
        "codeqwen", "qwen/codeqwen1.5-7b", "https://huggingface.co/Qwen/CodeQwen1.5-7B"
    ),
    # DeepSeek's own multimodal models, published without the word "deepseek".
    Derivative(
        "januspro",
        "deepseek-ai/janus-pro-7b",
        "https://huggingface.co/deepseek-ai/Janus-Pro-7B",
    ),
    Derivative(
        "janusflow",
        "deepseek-ai/janusflow-1.3b",
        "https://huggingface.co/deepseek-ai/JanusFlow-1.3B",
    ),
    # Mistral AI's own models, published under names without "mistral"
    # (on La Plateforme too: "codestral-latest", "open-mixtral-8x22b").
    *(
        Derivative(
            prefix,
            f"mistralai/{card.lower()}",
            f"https://huggingface.co/mistralai/{card}",
        )
        for prefix, card in (
            ("mixtral", "Mixtral-8x22B-Instruct-v0.1"),
            ("openmixtral", "Mixtral-8x22B-Instruct-v0.1"),
            ("codestral", "Codestral-22B-v0.1"),
            ("pixtral", "Pixtral-12B-2409"),
            ("ministral", "Ministral-8B-Instruct-2410"),
            ("mathstral", "Mathstral-7B-v0.1"),
            ("magistral", "Magistral-Small-2506"),
            ("devstral", "Devstral-Small-2505"),
            ("voxtral", "Voxtral-Mini-3B-2507"),
        )
    ),
)

_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]+")


def squash(name: str) -> str:
    """``name`` reduced to lower-case letters and digits."""
    return _NOT_ALNUM.sub("", name.lower())


def derived_from(name: str) -> tuple[str, ...]:
    """The base models a (canonical, vendor-less) model name derives from."""
    key = squash(name)
    return tuple(d.base for d in DERIVATIVES if key.startswith(d.prefix))
