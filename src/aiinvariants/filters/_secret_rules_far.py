"""Credentials whose name is not right before the value (part of the ruleset).

The assignment rule judges ``name = value`` when the two are next to each
other. Two documented syntaxes put other text between them: a Terraform
variable block (the name in its header, the value in its ``default``) and
the GitHub CLI's ``gh secret set NAME --body VALUE``. Each rule here reads
the whole construct within :data:`~aiinvariants.filters._secret_rules.MAX_MATCH`
characters, and the value is judged like an assigned one (its strength,
placeholders, names that do not hold a credential).

Split from :mod:`aiinvariants.filters._secret_rules` to keep modules small;
the same rules apply: written from the tool's own documentation (named in
``source``), never copied from another scanner; bounded quantifiers only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiinvariants.filters._holds import lead_words
from aiinvariants.filters._secret_values import Assignment, assignment_ok, strong_value

__all__ = ["register_far_name_rules"]

_WORDS = r"(?:pass|pwd|secret|token|key|auth|credential)"


# The name: at most 50 characters, the credential word within them (a
# look-ahead, so the word costs no width). The body, two ways within
# MAX_MATCH: attributes only, then a value of up to 100 characters (qv); or
# attributes, one nested block (``validation { … }``, the docs' example; a
# short ``{…}`` inside it, a regex quantifier ``.{12,}`` or ``${var.x}``),
# attributes, then a value of up to 64 characters (v) -- a longer one runs
# on (more_v) and blocks rather than leave its rest unmasked.
_DEFAULT = r"\bdefault[ \t]{0,8}=[ \t]{0,8}\""
# a heredoc default (``default = <<EOT`` / ``<<-EOT``, the value on its own
# line): the docs' multi-line string form, one line of value here
_HEREDOC = r"\bdefault[ \t]{0,8}=[ \t]{0,8}<<-?[A-Za-z_]{1,20}[ \t]{0,8}\n[ \t]{0,8}"
_TERRAFORM = (
    r"(?i)variable[ \t]{1,3}\"(?P<name>(?=[a-z0-9_-]{0,40}" + _WORDS
    + r")[a-z0-9_-]{3,50})\"[ \t]{0,3}\{(?:"
    r"[^{}]{0,140}?" + _DEFAULT + r"(?P<qv>[^\"\n]{1,100})\""
    r"|[^{}]{0,140}?" + _HEREDOC + r"(?P<hv>[^\s]{1,100})[ \t]{0,8}\n"
    r"|[^{}]{0,60}?\{(?:[^{}]{0,150}"
    r"|[^{}]{0,50}\{[^{}\n]{0,8}\}[^{}]{0,90})\}[^{}]{0,31}?"
    + _DEFAULT
    + r"(?P<v>[^\"\n]{1,64})(?:\"|(?=[^\"\n])(?P<more_v>)))"
)  # fmt: skip


def _terraform_ok(match: re.Match[str], _text: str) -> bool:
    name = match.group("name")
    anchor = next(k for k in ("pass", "pwd", "secret", "token", "key", "auth",
                              "credential") if k in name.lower())  # fmt: skip
    value = match.group("qv") or match.group("v") or match.group("hv")
    return assignment_ok(Assignment(name, value, True, "", "=", anchor))


def _gh_secret_ok(match: re.Match[str], _text: str) -> bool:
    value = match.group("qv") or match.group("v") or ""
    # "$TOKEN", "$(cat file)": the shell supplies the value; it is not here.
    return not value.startswith("$") and strong_value(value)


def register_far_name_rules(rule: Callable[..., Any]) -> None:
    """Add the rules whose name and value are apart through ``rule(...)``."""
    rule(
        "terraform-variable-default",
        "any (Terraform, OpenTofu)",
        _TERRAFORM,
        ("variable",),
        "a strong default value of a Terraform variable whose name says it "
        "holds a credential (variable \"db_password\" { default = \"…\" })",
        "Terraform language docs, 'Input Variables' (variable blocks, default, "
        "sensitive)",
        kind="context",
        severity="medium",
        judge=_terraform_ok,
        shape=r"[ \t]{1,3}\"[a-z0-9_-]{0,40}" + _WORDS,
    )  # fmt: skip
    rule(
        "gh-secret-set-body",
        "GitHub (gh CLI)",
        r"(?i)gh[ \t]{1,3}secret[ \t]{1,3}set[ \t](?:[^\n|;&]{0,120}?[ \t])?"
        # -b takes its value glued too (-bVALUE), as every short flag does
        r"(?:--body(?:[ \t]{1,3}|=)|-b(?:[ \t]{1,3}|=)?)"
        r"(?:(?P<q>[\"'])(?P<qv>[^\"'\n]{1,200})(?P=q)"
        r"|(?P<v>[^\s\"'`]{1,200}))",
        ("secret",),
        "a secret's value given on the command line (gh secret set NAME --body VALUE)",
        "GitHub CLI manual, 'gh secret set' (-b, --body)",
        kind="context",
        judge=_gh_secret_ok,
        back=8,
        shape=r"[ \t]{1,3}set[ \t]",
        lead=lead_words("gh"),
    )
