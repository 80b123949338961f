"""The credential ruleset of :class:`~aiinvariants.filters.SecretsFilter`.

Every rule was written for this project from the provider's own public
description of its credential format (token prefixes, lengths, alphabets and
checksums, as given in the provider's documentation, changelog or engineering
blog named in each rule's ``source``). No rule was copied from another
scanner's rule set (gitleaks, detect-secrets, trufflehog…); their test
corpora are used only to *measure* this ruleset (see ``benchmarks``).

Two kinds of rules:

* ``token`` rules match a credential that starts with a distinctive prefix
  (the rule's keywords) and is one run of at least :data:`MIN_RUN` token
  characters (letters, digits, ``_-+/=.``). The filter looks for their
  keywords only inside such runs, which makes the pre-scan cheap.
* ``context`` rules match a credential by what surrounds it (``-----BEGIN``,
  ``://user:password@``, ``password = …``); their keywords are looked for in
  the whole text.

Token boundaries are decided by the filter, not by the regexes: a match
inside a base64 blob is dropped, one with a stray character glued to it is
kept (see :mod:`aiinvariants.filters._secrets`). Every rule's regex starts at
one of its keywords (or, for a rule with ``back``, at most ``back``
characters before it), has only bounded quantifiers (no nested unbounded
repetition: no catastrophic backtracking) and matches at most
:data:`MAX_MATCH` characters. Values assigned to credential-named keys are
judged in :mod:`aiinvariants.filters._secret_values`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from aiinvariants.filters._base import Severity
from aiinvariants.filters._secret_rules_apis import register_api_rules
from aiinvariants.filters._secret_rules_far import register_far_name_rules
from aiinvariants.filters._secret_rules_generic import register_generic_rules
from aiinvariants.filters._secret_values import (
    entropy,
    is_placeholder,
)

__all__ = ["MAX_MATCH", "MIN_RUN", "RULES", "SecretRule", "entropy"]

MIN_RUN: Final = 16
"""Token rules only fire inside runs of at least this many token characters."""

MAX_MATCH: Final = 400
"""No rule matches more characters than this (the streaming hold-back bound)."""

RUN_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=."
)


@dataclass(frozen=True)
class SecretRule:
    """One credential format.

    Attributes:
        id: stable rule id, used in findings and audit events.
        provider: who issues the credential.
        pattern: the compiled regex; it matches starting at a keyword.
        keywords: lowercase literals; the regex only runs where one occurs.
        kind: ``token`` (prefix inside a long run) or ``context``.
        what: what the rule matches, for the docs table.
        source: where the format is documented.
        severity: severity of a finding.
        checksum: verifies an embedded checksum; a verified match is
            ``critical``. A failed checksum still matches (fail closed): a
            hand-edited or truncated credential is still a leak.
        validate: an extra test of the matched text (placeholders, entropy).
        judge: an extra test given the match and the whole text (for rules
            whose decision needs named groups or the next character).
        back: the credential may start up to this many characters *before*
            the keyword (a suffix marks it: Mailchimp's ``-us6``); the
            regex is searched from there and must cover the keyword.
        lead: for a rule with ``back`` whose match starts before its keyword
            across white space (``docker login``), a regex over the
            lower-cased text matching, at its end, what may still become that
            start before the keyword arrives; streaming holds it back.
        shape: for ``context`` rules, a regex over the *lower-cased* text
            that must follow the keyword for the rule to be tried (a cheap
            prefilter run at C speed; empty: every occurrence is tried).
        cased_shape: a second prefilter, over the text *as written*, that
            must follow an *upper-case* keyword, for what lower-casing hides
            (``NAME value`` after a bare space); an occurrence is tried when
            either shape matches.
        always_block: the match cannot be fully redacted within the bounded
            window (a PEM key block), so the finding blocks even when the
            filter's action is ``redact``. A match in which a named group
            whose name starts with ``more`` took part blocks the same way:
            the value runs on past the rule's length bound (a 600-character
            session token), and masking only its start would leave the rest.
        reads_fence: the judge reads the language of the fenced code block
            the site is in (up to ``FENCE_REACH`` characters before it), so
            a site's outcome depends on that too, not only on the
            characters near it.
    """

    id: str
    provider: str
    pattern: re.Pattern[str]
    keywords: tuple[str, ...]
    kind: Literal["token", "context"]
    what: str
    source: str
    severity: Severity = "high"
    checksum: Callable[[str], bool] | None = field(default=None, repr=False)
    validate: Callable[[str], bool] | None = field(default=None, repr=False)
    judge: Callable[[re.Match[str], str], bool] | None = field(default=None, repr=False)
    always_block: bool = False
    back: int = 0
    shape: str = ""
    lead: str = ""
    cased_shape: str = ""
    reads_fence: bool = False


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int, width: int) -> str:
    out = ""
    while number:
        number, rem = divmod(number, 62)
        out = _B62[rem] + out
    return out.rjust(width, "0")


def github_checksum_ok(token: str) -> bool:
    """GitHub's token checksum: the last 6 characters are base62(CRC32(rest)).

    Documented in GitHub's engineering blog "Behind GitHub's new
    authentication token formats" (2021).
    """
    _prefix, _, body = token.partition("_")
    if len(body) != 36:
        return False
    return _base62(zlib.crc32(body[:30].encode()), 6) == body[30:]


def not_placeholder(value: str) -> bool:
    """False when the whole value is a placeholder (``XXXX…``, ``<your-key>``)."""
    return not is_placeholder(value)


_RULES: list[SecretRule] = []


def _rule(
    rule_id: str,
    provider: str,
    regex: str,
    keywords: tuple[str, ...],
    what: str,
    source: str,
    *,
    kind: Literal["token", "context"] = "token",
    severity: Severity = "high",
    checksum: Callable[[str], bool] | None = None,
    validate: Callable[[str], bool] | None = None,
    judge: Callable[[re.Match[str], str], bool] | None = None,
    always_block: bool = False,
    back: int = 0,
    shape: str = "",
    lead: str = "",
    cased_shape: str = "",
    reads_fence: bool = False,
) -> None:
    _RULES.append(
        SecretRule(
            id=rule_id,
            provider=provider,
            pattern=re.compile(regex),
            keywords=keywords,
            kind=kind,
            what=what,
            source=source,
            severity=severity,
            checksum=checksum,
            validate=validate,
            judge=judge,
            always_block=always_block,
            back=back,
            shape=shape,
            lead=lead,
            cased_shape=cased_shape,
            reads_fence=reads_fence,
        )
    )


_A = "A-Za-z0-9"
_U = "A-Za-z0-9_-"
_GH = "GitHub docs, 'About authentication to GitHub' (token prefixes) and blog"
_GH += " 'Behind GitHub's new authentication token formats' (CRC32 checksum)"
_GL = "GitLab docs, 'Token overview' (token prefixes)"

# -- cloud -------------------------------------------------------------------
_rule(
    "aws-access-key-id",
    "Amazon Web Services",
    r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
    ("akia", "asia", "abia", "acca"),
    "access key id (AKIA long-term, ASIA temporary)",
    "AWS IAM docs, 'Understanding unique ID prefixes'",
)
_rule(
    "aws-secret-access-key",
    "Amazon Web Services",
    r"(?i)aws_?secret_?access_?key[\"']?\s{0,3}(?:=|:|=>|:=)\s{0,3}[\"']?"
    r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
    ("secret",),
    "secret access key (40 base64 chars) assigned to aws_secret_access_key",
    "AWS CLI docs, 'Configuration and credential file settings'",
    kind="context",
    back=4,
    shape=r"_?access_?key",
    validate=lambda m: not_placeholder(m[-40:]),
)
_rule(
    "gcp-api-key",
    "Google Cloud",
    rf"AIza[{_U}]{{35}}",
    ("aiza",),
    "API key (AIza + 35 chars)",
    "Google Cloud docs, 'Manage API keys'",
)
_rule(
    "google-oauth-access-token",
    "Google",
    rf"ya29\.[{_U}]{{20,300}}",
    ("ya29.",),
    "OAuth 2.0 access token (ya29.)",
    "Google Identity docs, OAuth 2.0 tokens",
)
_rule(
    "google-oauth-client-secret",
    "Google",
    rf"GOCSPX-[{_U}]{{28}}",
    ("gocspx-",),
    "OAuth client secret (GOCSPX-)",
    "Google Cloud blog, 'OAuth client secret format change' (2021)",
)
_rule(
    "azure-storage-account-key",
    "Microsoft Azure",
    r"(?i)accountkey=[A-Za-z0-9+/]{86}==",
    ("key",),
    "storage account key in a connection string",
    "Azure Storage docs, 'Configure Azure Storage connection strings'",
    kind="context",
    back=7,
    shape=r"=[a-z0-9+/]{86}==",
)
_rule(
    "alibaba-access-key-id",
    "Alibaba Cloud",
    rf"LTAI[{_A}]{{12,20}}",
    ("ltai",),
    "AccessKey ID (LTAI)",
    "Alibaba Cloud docs, 'Create an AccessKey pair'",
)
_rule(
    "digitalocean-token",
    "DigitalOcean",
    r"do[opr]_v1_[a-f0-9]{64}",
    ("dop_v1_", "doo_v1_", "dor_v1_"),
    "personal access, OAuth or refresh token (do?_v1_ + 64 hex)",
    "DigitalOcean changelog, 'New token formats' (2021)",
)
_rule(
    "heroku-api-key",
    "Heroku",
    rf"HRKU-[{_U}]{{20,80}}",
    ("hrku-",),
    "API key (HRKU-)",
    "Heroku Dev Center, 'Heroku API key format' (2024)",
)
_rule(
    "flyio-token",
    "Fly.io",
    r"fo1_[A-Za-z0-9_-]{39,50}",
    ("fo1_",),
    "organization/deploy token (fo1_)",
    "Fly.io docs, 'Access tokens'",
)
_rule(
    "cloudflare-origin-ca-key",
    "Cloudflare",
    r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}",
    ("v1.0-",),
    "Origin CA key (v1.0-)",
    "Cloudflare API docs, 'API keys' (Origin CA key)",
)
_rule(
    "databricks-token",
    "Databricks",
    r"dapi[a-f0-9]{32}(?:-\d)?",
    ("dapi",),
    "personal access token (dapi + 32 hex)",
    "Databricks docs, 'Personal access token authentication'",
)
_rule(
    "hashicorp-vault-token",
    "HashiCorp Vault",
    rf"hv[sbr]\.[{_U}]{{24,250}}",
    ("hvs.", "hvb.", "hvr."),
    "service, batch or recovery token (hvs./hvb./hvr.)",
    "Vault docs, 'Tokens' (token prefixes, 1.10+)",
)
_rule(
    "doppler-token",
    "Doppler",
    r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9_.-]{40,120}",
    ("dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."),
    "personal, service, service-account, CLI, SCIM or audit token",
    "Doppler docs, 'Token formats'",
)
_rule(
    "pulumi-access-token",
    "Pulumi",
    r"pul-[a-f0-9]{40}",
    ("pul-",),
    "access token (pul- + 40 hex)",
    "Pulumi docs, 'Access tokens'",
)
_rule(
    "planetscale-token",
    "PlanetScale",
    r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.=-]{32,64}",
    ("pscale_tkn_", "pscale_pw_", "pscale_oauth_"),
    "service token, password or OAuth token",
    "PlanetScale docs, 'Service tokens' and 'Passwords'",
)
_rule(
    "supabase-token",
    "Supabase",
    r"sb(?:p_[a-f0-9]{40}|_secret_[A-Za-z0-9_-]{20,60})",
    ("sbp_", "sb_secret_"),
    "management API token (sbp_) or secret API key (sb_secret_)",
    "Supabase docs, 'API keys'",
)
_rule(
    "docker-hub-pat",
    "Docker",
    rf"dckr_(?:pat|oat)_[{_U}]{{24,64}}",
    ("dckr_pat_", "dckr_oat_"),
    "Docker Hub personal or organization access token",
    "Docker docs, 'Personal access tokens'",
)
_rule(
    "tailscale-key",
    "Tailscale",
    r"tskey-(?:api|auth|client|webhook|scim)-[A-Za-z0-9]{8,24}-[A-Za-z0-9]{16,48}",
    ("tskey-",),
    "API, auth, OAuth client or webhook key (tskey-)",
    "Tailscale docs, 'Key prefixes'",
)
_rule(
    "vault-terraform-age-secret-key",
    "age",
    r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    ("age-secret-key-1",),
    "age X25519 identity (Bech32)",
    "age specification (C2SP), 'Native X25519 recipient type'",
)
# -- version control and CI ---------------------------------------------------
for _pfx, _name in (
    ("ghp", "personal access token (classic)"),
    ("gho", "OAuth access token"),
    ("ghu", "GitHub App user-to-server token"),
    ("ghs", "GitHub App installation (server-to-server) token"),
    ("ghr", "refresh token"),
):
    _rule(
        {"ghp": "github-pat", "gho": "github-oauth", "ghu": "github-app-user",
         "ghs": "github-app-installation", "ghr": "github-refresh"}[_pfx],
        "GitHub", rf"{_pfx}_[{_A}]{{36}}", (f"{_pfx}_",),
        f"{_name} ({_pfx}_ + 30 random + 6 CRC32)", _GH,
        checksum=github_checksum_ok,
    )  # fmt: skip
_rule(
    "github-fine-grained-pat",
    "GitHub",
    r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
    ("github_pat_",),
    "fine-grained personal access token (github_pat_)",
    _GH,
)
for _pfx, _rid, _name in (
    ("glpat-", "gitlab-pat", "personal/project/group access token"),
    ("gldt-", "gitlab-deploy-token", "deploy token"),
    ("glrt-", "gitlab-runner-token", "runner authentication token"),
    ("glptt-", "gitlab-pipeline-trigger-token", "pipeline trigger token"),
    ("gloas-", "gitlab-oauth-secret", "OAuth application secret"),
    ("glft-", "gitlab-feed-token", "feed token"),
    ("glcbt-", "gitlab-ci-job-token", "CI/CD job token"),
    ("glimt-", "gitlab-incoming-mail-token", "incoming mail token"),
    ("glagent-", "gitlab-agent-token", "Kubernetes agent token"),
    ("glsoat-", "gitlab-scim-token", "SCIM OAuth token"),
):
    _rule(
        _rid,
        "GitLab",
        rf"{re.escape(_pfx)}[A-Za-z0-9_.-]{{20,80}}",
        (_pfx,),
        f"{_name} ({_pfx})",
        _GL,
    )
_rule(
    "gitlab-runner-registration-token",
    "GitLab",
    r"GR1348941[A-Za-z0-9_-]{20,40}",
    ("gr1348941",),
    "runner registration token (GR1348941, deprecated)",
    _GL,
)
_rule(
    "npm-token",
    "npm",
    rf"npm_[{_A}]{{36}}",
    ("npm_",),
    "access token (npm_)",
    "npm docs, 'About access tokens'",
)
_rule(
    "pypi-token",
    "PyPI",
    r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,300}"
    r"(?:(?=[A-Za-z0-9_-])(?P<more>)|)",
    ("pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"),
    "API token (pypi- + macaroon for pypi.org or test.pypi.org: a version 2 "
    "macaroon whose location field, base64url-encoded, names the index); a "
    "token longer than the rule's bound (anyone may add caveats to a "
    "macaroon) always blocks",
    "PyPI help, 'API tokens'; the macaroon v2 binary format (version byte 2, "
    "field 1 = location, length-prefixed)",
)
_rule(
    "rubygems-api-key",
    "RubyGems",
    r"rubygems_[a-f0-9]{48}",
    ("rubygems_",),
    "API key (rubygems_ + 48 hex)",
    "RubyGems guides, 'API key'",
)
_rule(
    "atlassian-api-token",
    "Atlassian",
    r"ATATT3[A-Za-z0-9_=-]{100,250}",
    ("atatt3",),
    "API token (ATATT3)",
    "Atlassian support, 'Manage API tokens'",
)
_rule(
    "bitbucket-app-password",
    "Atlassian",
    r"ATBB[A-Za-z0-9_=.-]{28,64}",
    ("atbb",),
    "Bitbucket app password (ATBB)",
    "Bitbucket Cloud docs, 'App passwords'",
)
_rule(
    "grafana-service-account-token",
    "Grafana",
    r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
    ("glsa_",),
    "service account token (glsa_)",
    "Grafana docs, 'Service accounts'",
)
_rule(
    "grafana-cloud-token",
    "Grafana",
    r"glc_[A-Za-z0-9+/]{32,300}={0,2}",
    ("glc_",),
    "Grafana Cloud access policy token (glc_)",
    "Grafana Cloud docs, 'Access policies'",
)
_rule(
    "sentry-auth-token",
    "Sentry",
    r"sntry[su]_[A-Za-z0-9+/=_-]{40,300}",
    ("sntrys_", "sntryu_"),
    "organization or user auth token",
    "Sentry docs, 'Auth tokens'",
)
_rule(
    "postman-api-key",
    "Postman",
    r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
    ("pmak-",),
    "API key (PMAK-)",
    "Postman docs, 'Postman API keys'",
)
_rule(
    "newrelic-user-key",
    "New Relic",
    r"NRAK-[A-Z0-9]{27}",
    ("nrak-",),
    "user API key (NRAK-)",
    "New Relic docs, 'API keys'",
)
_rule(
    "deno-deploy-token",
    "Deno",
    r"dd[pw]_[A-Za-z0-9]{36}",
    ("ddp_", "ddw_"),
    "Deno Deploy access token",
    "Deno Deploy docs, 'Access tokens'",
)
_rule(
    "prefect-api-key",
    "Prefect",
    r"pnu_[A-Za-z0-9]{36}",
    ("pnu_",),
    "API key (pnu_)",
    "Prefect docs, 'Manage API keys'",
)
# Chat, payment and AI-API formats live in a second module (size).
register_api_rules(_rule)
register_far_name_rules(_rule)

# Generic formats (PEM keys, JWTs, URLs, command lines, assignments): a
# second module (size); registered last, so the rule order is unchanged.
register_generic_rules(_rule)

RULES: Final[tuple[SecretRule, ...]] = tuple(_RULES)
"""Every rule, in a stable order."""
