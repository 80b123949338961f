"""Moved: the I10 content classifiers live in :mod:`aiinvariants.filters.classifiers`.

Every name this module had is re-exported here, so existing imports keep
working; new code imports from ``aiinvariants.filters.classifiers``.
"""

from __future__ import annotations

from aiinvariants.filters.classifiers import (
    AzureContentSafetyClassifier,
    BedrockGuardrailsClassifier,
    Classifier,
    ClassifierError,
    ClassifierFilter,
    OpenAICompatibleClassifier,
    OpenAIModerationClassifier,
    Verdict,
    classifiers_from_policy,
)

__all__ = [
    "AzureContentSafetyClassifier",
    "BedrockGuardrailsClassifier",
    "Classifier",
    "ClassifierError",
    "ClassifierFilter",
    "OpenAICompatibleClassifier",
    "OpenAIModerationClassifier",
    "Verdict",
    "classifiers_from_policy",
]
