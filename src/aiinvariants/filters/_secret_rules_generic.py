"""Generic credential formats of the ruleset (part of the ruleset).

PEM private keys and their bare bodies, JWTs, passwords in URLs and on
command lines, SQL ``IDENTIFIED BY``, ``Authorization`` headers and the
``generic-credential-assignment`` rule (a strong value assigned to a
credential-named key). Split from
:mod:`aiinvariants.filters._secret_rules` to keep modules small; the same
rules apply: written from the formats' own specifications and tools'
documentation (named in ``source``), never copied from another scanner;
bounded quantifiers only. Registered last, so the rule order is stable.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from aiinvariants.filters._assignment_syntax import (
    ASSIGN_ANCHORS as _ASSIGN_ANCHORS,
)
from aiinvariants.filters._assignment_syntax import (
    ASSIGN_SHAPE as _ASSIGN_SHAPE,
)
from aiinvariants.filters._assignment_syntax import (
    ASSIGN_SHAPE_UPPER as _ASSIGN_SHAPE_UPPER,
)
from aiinvariants.filters._assignment_syntax import BETWEEN as _BETWEEN
from aiinvariants.filters._assignment_syntax import CLOSERS as _CLOSERS
from aiinvariants.filters._assignment_syntax import PAD as _PAD
from aiinvariants.filters._assignment_syntax import (
    STRING_PREFIX as _STRING_PREFIX,
)
from aiinvariants.filters._assignment_syntax import VALUE_LEAD as _VALUE_LEAD
from aiinvariants.filters._assignment_syntax import fence_language
from aiinvariants.filters._holds import lead_words
from aiinvariants.filters._secret_values import (
    Assignment,
    assignment_ok,
    basic_auth_ok,
    is_placeholder,
    jwt_ok,
    strong_value,
)

__all__ = ["register_generic_rules"]


def not_placeholder(value: str) -> bool:
    """False when the whole value is a placeholder (``XXXX…``, ``<your-key>``)."""
    return not is_placeholder(value)


def _url_password_ok(match: str) -> bool:
    if ":" not in match[3:]:  # the whole userinfo is a token
        return strong_value(match[3:-1])
    password = match[3:].split(":", 1)[1][:-1]
    return len(password) >= 3 and not_placeholder(password)


def _cli_password_ok(password: str) -> bool:
    return not password.isdigit() and _url_password_ok(f"://:{password}@")


# \Z, not "$": "$" also matches before a line break, which glued the word
# of the line before to the name ("x\nPASSWORD value" read as xPASSWORD)
_NAME_LEFT = re.compile(r"[A-Za-z0-9_.$@-]{0,32}\Z")


def _unquoted(value: str) -> str:
    """An unquoted value without the sentence or call punctuation after it."""
    value = value.rstrip(".,")
    for close, open_ in ((")", "("), ("]", "["), ("}", "{")):
        while value.endswith(close) and value.count(close) > value.count(open_):
            value = value[:-1].rstrip(".,")
    return value


def _assignment_judge(match: re.Match[str], text: str) -> bool:
    quoted = match.group("q") is not None
    value = match.group("qv") if quoted else _unquoted(match.group("v"))
    if quoted and value.endswith("\\"):
        value = value[:-1]  # JSON inside a string: \"…\"
    if match.group("more") is not None and " " in value:
        return False  # a long quoted sentence, not a value cut by the bound
    after = text[match.end() : match.end() + 1]
    start = match.start()
    left = _NAME_LEFT.search(text, max(0, start - 32), start)
    name = (left.group() if left else "") + match.group("name")
    if match.group("op").strip() == ">" and "<" not in text[max(0, start - 34) : start]:
        return False  # ">" only closes an XML/HTML tag: <apiToken>value</apiToken>
    anchor = next(
        (k for k in _ASSIGN_ANCHORS if match.group("name").lower().startswith(k)), ""
    )
    return assignment_ok(
        Assignment(
            name,
            value,
            quoted,
            after,
            match.group("op"),
            anchor,
            fence_language(text, start),
            match.group("q") or "",
        )
    )


def _comparison_judge(match: re.Match[str], text: str) -> bool:
    name = match.group("name")
    anchor = next((k for k in _ASSIGN_ANCHORS if k in name.lower()), "")
    return assignment_ok(
        Assignment(
            name,
            match.group("qv"),
            True,
            "",
            "==",
            anchor,
            fence_language(text, match.start()),
            match.group("q"),
        )
    )


def _jwt_in_base64(value: str) -> bool:
    try:
        decoded = base64.b64decode(value[: len(value) // 4 * 4]).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return False
    return ".eyJ" in decoded or ".ey" in decoded[:400]


def _authorization_ok(match: re.Match[str], text: str) -> bool:
    scheme = (match.group("scheme") or "").lower()
    value = match.group("v")
    if scheme == "basic":
        return basic_auth_ok(value)
    return "://" not in value and strong_value(value) and len(value) >= 12


def register_generic_rules(_rule: Callable[..., Any]) -> None:
    """Register the generic formats with the ruleset's ``_rule``."""
    _rule(
        "private-key",
        "any (PEM, RFC 7468)",
        r"-----BEGIN[ A-Z0-9]{0,24}PRIVATE KEY(?: BLOCK)?-----"
        r"[A-Za-z0-9+/=\s:,-]{0,300}",
        ("-----begin",),
        "PEM private key block header and the start of its body (always blocks)",
        "RFC 7468 'Textual Encodings of PKIX, PKCS, and CMS Structures'",
        kind="context",
        severity="critical",
        always_block=True,
    )
    _rule(
        "private-key-body",
        "any (RFC 8017, RFC 5208/5958, SEC 1, OpenSSH PROTOCOL.key)",
        r"(?:MII[A-Za-z0-9+/]{3}IBA(?:AK[BC]|DANBgkqhkiG9w0BAQEFAAS)"
        r"|M(?:[GH][A-Za-z0-9+/]CAQEE|IGkAgEBBD|IHcAgEBBE)"
        r"|MI[GH][A-Za-z0-9+/]AgEAMB[AM]GByqGSM49AgEG|MC4CAQAwBQYDK2VwBCIEI"
        r"|M[GH][A-Za-z0-9+/]CAQAw[A-Za-z0-9+/]{3}HKoZIzj0CAQ"
        r"|b3BlbnNzaC1rZXktdjE)[A-Za-z0-9+/=]{16,300}",
        (
            "ibaak",
            "ibadanbgkqhkig9w0baqefaas",
            "caqee",
            "caqaw",
            "migkagebbd",
            "mihcagebbe",
            "ageamb",
            "mc4caqawbqydk2vwbciei",
            "b3blbnnzac1rzxktdje",
        ),
        "the base64 body of a private key without its BEGIN line: the fixed DER "
        "start of an RSA (PKCS #1, PKCS #8), EC (SEC 1, PKCS #8) or Ed25519 key, "
        "or the openssh-key-v1 magic (always blocks)",
        "RFC 8017 A.1.2 (RSAPrivateKey), RFC 5958 (OneAsymmetricKey), SEC 1 C.4, "
        "OpenSSH PROTOCOL.key",
        severity="critical",
        always_block=True,
        back=6,
    )
    _rule(
        "jwt",
        "any (RFC 7519)",
        r"eyJ[A-Za-z0-9_-]{8,200}\.eyJ[A-Za-z0-9_-]{8,160}(?:\.[A-Za-z0-9_-]{0,30})?"
        r"(?:(?=[A-Za-z0-9_.-])(?P<more>)|)",
        ("eyj",),
        'JSON Web Token (base64url header and claims starting with {"); the '
        "header must decode to a JSON object with alg, and the specification "
        "tutorials' example token is not reported; a token longer than the "
        "rule's bound (an access token with long claims) always blocks",
        "RFC 7519 'JSON Web Token', RFC 7515 (compact serialization)",
        validate=jwt_ok,
    )
    _rule(
        "jwt-base64",
        "any (RFC 7519, RFC 4648)",
        r"ZXlK[A-Za-z0-9+/]{40,380}={0,2}",
        ("zxlk",),
        "a JWT encoded once more in base64 ('eyJ' encodes to 'ZXlK')",
        "RFC 7519 and RFC 4648 section 4",
        validate=lambda v: _jwt_in_base64(v),
    )
    _rule(
        "credential-comparison", "any",
        r"(?<![A-Za-z0-9]{3})(?P<q>[\"'`])(?P<qv>[^\"'`\n]{8,200})(?P=q)"
        r"\s{0,3}[!=]={1,2}\s{0,3}"
        r"(?P<name>[A-Za-z0-9_.]{0,24}(?:pass|pwd|secret|token|key|credential)"
        r"[A-Za-z0-9_]{0,24})\b",
        ("==", "!="),
        'a strong literal compared with a credential-named variable ("…" == password)',
        "this project (same value judgement as generic-credential-assignment)",
        kind="context", severity="medium", judge=_comparison_judge, back=205,
        reads_fence=True,
        shape=r"=?\s{0,3}[a-z0-9_.]{0,24}(?:pass|pwd|secret|token|key|credential)",
        # a literal still open, or closed and not yet compared. A quote glued to
        # a string prefix (b"…", rb'…', f"…", x'…') opens one; after a longer
        # word ("don't") it opens nothing, for the rule as for its lead.
        lead=r"(?<![A-Za-z0-9]{3})([\"'`])[^\"'`\n]{0,200}(?:\1\s{0,3})?\Z",
    )  # fmt: skip
    _rule(
        "url-credentials",
        "any (RFC 3986)",
        r"://(?:[^\s/:\"'<>`]{0,64}:[^\s/@\"'<>`]{1,128}|[A-Za-z0-9_-]{20,128})@",
        ("://",),
        "password in a URL's userinfo (database and broker connection strings; "
        "also with characters RFC 3986 wants percent-encoded, as people write them: "
        "an empty user, redis://:pw@, or an e-mail address as the user), or a "
        "strong token as the whole userinfo (git clone https://<token>@host/…)",
        "RFC 3986 section 3.2.1 (userinfo)",
        kind="context",
        validate=_url_password_ok,
        shape=r"(?:[^\s/:\"'<>`]{0,64}:[^\s/@\"'<>`]{1,128}|[a-z0-9_-]{20,128})@",
    )
    _rule(
        "cli-user-password",
        "any (curl, wget, HTTP clients)",
        r"-u(?:ser)?[ =]{1,3}(?P<q>[\"']?)[^\s:\"'$]{1,64}:"
        r"(?P<pw>[^\s\"']{3,128})(?P=q)"
        r"(?![^\s\"'])",
        ("-u",),
        "user:password given to a command-line client (curl -u, --user); a uid:gid "
        "pair (docker run -u 1000:1000) or a $VARIABLE is not a password",
        "curl man page, '-u, --user <user:password>'",
        kind="context",
        judge=lambda m, _text: _cli_password_ok(m.group("pw")),
        shape=r"(?:ser)?[ =]{1,3}[\"']?[^\s:\"'$]{1,64}:[^\s\"']{3}",
    )
    _rule(
        "cli-password-flag",
        "any (mysql, sshpass, docker/podman/helm login, az login)",
        r"(?i)(?:(?P<glued>mysql(?:dump|admin)?|mariadb)"
        r"|sshpass|(?:docker|podman|helm\s{1,3}registry)\s{1,3}login|az\s{1,3}login)"
        r"[ \t](?:[^\n|;&]{0,120}?[ \t])?-p"
        r"(?P<sp>[ \t]{1,3})?(?P<q>['\"]?)(?P<pw>[^\s'\"]{3,128})(?P=q)(?![^\s'\"])",
        ("mysql", "mariadb", "sshpass", "login"),
        "a password given on a client's command line with -p (mysql -pPASS, "
        "sshpass -p, docker login -p, az login -p); mysql's -p takes only a glued "
        "value (--password is a credential-named flag: generic assignment)",
        "MySQL manual, 'mysql client options' (--password); sshpass(1); docker "
        "login reference; Azure CLI 'az login'",
        kind="context",
        judge=lambda m, _text: (
            not (m.group("glued") and m.group("sp") and m.group(0).count("-p") == 1)
            and strong_value(m.group("pw"))
        ),
        back=20,
        shape=r"(?:dump|admin)?[ \t](?:[^\n|;&]{0,120}?[ \t])?-p",
        lead=lead_words("docker", "podman", "helm registry", "az"),
    )
    _rule(
        "oracle-connect-password",
        "Oracle (JDBC thin driver, SQL*Plus)",
        r"(?i)(?:jdbc:oracle:thin:|sqlplus[ \t]{1,3}(?:-[sl][ \t]{1,3}){0,2})"
        r"[A-Za-z0-9_$#]{1,64}/(?P<pw>[^@\s/\"']{3,128})@",
        ("jdbc:oracle:thin:", "sqlplus"),
        "the password of an Oracle connect string (user/password@host)",
        "Oracle JDBC Developer's Guide, 'Data Sources and URLs'; SQL*Plus "
        "User's Guide, 'CONNECT'",
        kind="context",
        judge=lambda m, _text: strong_value(m.group("pw")),
    )
    _rule(
        "netrc-password",
        "any (.netrc, curl, git, ftp)",
        r"(?i)machine[ \t]{1,4}\S{1,64}\s{1,4}login[ \t]{1,4}\S{1,64}\s{1,4}"
        r"password[ \t]{1,4}(?P<pw>[^\s]{3,128})",
        ("machine",),
        "the password of a .netrc entry (machine HOST login USER password PASS)",
        "GNU inetutils manual, 'The .netrc file'; curl man page, '--netrc'",
        kind="context",
        judge=lambda m, _text: strong_value(m.group("pw")),
        shape=r"[ \t]{1,4}\S{1,64}\s{1,4}login",
    )
    _rule(
        "powershell-securestring",
        "any (PowerShell)",
        r"(?i)convertto-securestring[ \t]{1,3}(?:-string[ \t]{1,3})?"
        r"(?P<q>['\"])(?P<pw>[^'\"\n]{3,200})(?P=q)",
        ("convertto-securestring",),
        "a plain-text password turned into a SecureString "
        '(ConvertTo-SecureString "…" -AsPlainText)',
        "PowerShell docs, 'ConvertTo-SecureString'",
        kind="context",
        judge=lambda m, _text: strong_value(m.group("pw")),
    )
    _rule(
        "sql-identified-by",
        "any (SQL: MySQL, MariaDB, Oracle, Snowflake)",
        r"(?i)identified\s{1,3}(?:with\s{1,3}[a-z0-9_]{1,40}\s{1,3})?by\s{1,3}"
        r"(?:password\s{1,3})?(?:(?P<q>['\"`])(?P<qv>[^'\"`\n]{1,128})(?P=q)"
        r"|(?P<v>[^\s'\"`;]{1,128})(?<![.,])(?=[ \t]{0,3}(?:;|\r?\n|$)))",
        ("identified",),
        "a strong password set in SQL (CREATE USER … IDENTIFIED BY '…', ALTER USER)",
        "MySQL reference manual, 'CREATE USER Statement'; Oracle SQL reference",
        kind="context",
        judge=lambda m, _text: strong_value(m.group("qv") or m.group("v")),
        shape=r"\s{1,3}(?:with\s{1,3}[a-z0-9_]{1,40}\s{1,3})?by\s",
    )
    _rule(
        "authorization-header",
        "any (RFC 9110, RFC 7617, RFC 6750)",
        r"(?i)authorization[\"']?\s{0,3}[:=]\s{0,3}(?:[bruf]{0,2}[\"'`])?\s{0,3}"
        r"(?:(?P<scheme>[a-z][a-z0-9_.-]{1,24})\s{1,3}"
        r"(?:[\"'`]\s{0,3}\+\s{0,3}[bruf]{0,2}[\"'`])?)?"
        r"(?P<v>[^\s\"'`,;]{8,300})(?![^\s\"'`,;])",
        ("auth",),
        "credentials in an Authorization header (Basic user:password, Bearer token, "
        "any other scheme: ApiKey, SSWS, Splunk…; also built as an f-string or by "
        "concatenation, f\"Bearer …\", 'Bearer ' + '…')",
        "RFC 9110 section 11.6.2, RFC 7617 (Basic), RFC 6750 (Bearer)",
        kind="context",
        judge=_authorization_ok,
        shape=r"orization[\"']?\s{0,3}[:=]",
    )
    _rule(
        "generic-credential-assignment", "any",
        r"(?i)(?P<name>(?:pass|pwd|secret|token|key|auth|credential)"
        r"(?=(?P<rest>[A-Za-z0-9_.-]{0,40}))(?P=rest)(?:\[\d{0,4}\])?)" + _CLOSERS
        + _BETWEEN + _PAD +
        r"(?P<op>={2,3}|!={1,2}|:{1,3}=|[?.+]=|=>|=|:|,|>|\||\s(?:is|was)\s|"
        r"(?<=\s)(?=[\"'`])|(?<=\S)[ \t]{1,3}(?!(?:is|was)\s)(?=[^\s\"'`;<>=\\|*]))"
        r"(?:(?<=>)\s{0,16}|[ \t]{0,32}" + _VALUE_LEAD + ")" + _STRING_PREFIX +
        r"(?:(?P<q>[\"'`])(?P<qv>[^\"'`\n]{1,200})(?:(?P=q)|(?=[^\"'`\n])(?P<more>))"
        r"|(?P<v>[^\s\"'`;<>=\\][^\s\"'`;<>\\]{0,199})"
        r"(?:(?=[^\s\"'`;<>\\])(?P<more_v>)|))",
        _ASSIGN_ANCHORS,
        "a strong value assigned to a credential-named key (password = …, "
        "api_key: …, <xToken>…</xToken>, setProperty(\"X_TOKEN\", …))",
        "this project: the value's length, character classes and entropy decide; "
        "whole-value placeholders and code are not findings",
        kind="context", severity="medium", judge=_assignment_judge,
        shape=_ASSIGN_SHAPE, cased_shape=_ASSIGN_SHAPE_UPPER, reads_fence=True,
    )  # fmt: skip
