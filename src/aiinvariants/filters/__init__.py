"""Output filters (invariants I8 and I9) and leak-free streaming.

* :class:`SecretsFilter` — provider credentials (91 rules) and the app's own
  registered secrets, also encoded or obfuscated.
* :class:`SystemPromptLeakFilter` — canary and near-verbatim copies of the
  system prompt and hidden policies.
* :class:`ToolOutputLeakFilter` — long copies of confidential tool outputs.
* :class:`CompetitorFilter` — disparaging competitors, the company, its people.
* :class:`PIIFilter` — e-mail, phone, payment card, IBAN, national ids.
* :class:`OutputPipeline` — runs them: ``check``, ``enforce``, audit.
* :class:`StreamGuard` — the same decisions on a token stream.

Findings carry a rule id, a span, a severity and a keyed fingerprint, never
the matched text. See ``docs/output-filters.md``.
"""

from __future__ import annotations

from aiinvariants.filters._base import Action, Filter, Finding, Severity, fingerprint
from aiinvariants.filters._competitors import NEGATIVE_WORDS, CompetitorFilter
from aiinvariants.filters._pii import PIIFilter
from aiinvariants.filters._pipeline import REDACTED, OutputCheck, OutputPipeline
from aiinvariants.filters._secret_rules import RULES, SecretRule
from aiinvariants.filters._secrets import SecretsFilter
from aiinvariants.filters._streaming import StreamGuard
from aiinvariants.filters._system_prompt import SystemPromptLeakFilter
from aiinvariants.filters._tool_outputs import ToolOutputLeakFilter

__all__ = [
    "NEGATIVE_WORDS",
    "REDACTED",
    "RULES",
    "Action",
    "CompetitorFilter",
    "Filter",
    "Finding",
    "OutputCheck",
    "OutputPipeline",
    "PIIFilter",
    "SecretRule",
    "SecretsFilter",
    "Severity",
    "StreamGuard",
    "SystemPromptLeakFilter",
    "ToolOutputLeakFilter",
    "fingerprint",
]
