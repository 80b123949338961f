"""Personal data in output: e-mail, phone, payment cards, IBAN, national ids.

Numbers are validated where a checksum exists: payment cards (Luhn, known
issuer prefixes), IBAN (ISO 13616 mod-97), Swiss AHV/AVS (EAN-13), French
NIR (mod-97 key), Swedish personnummer (Luhn); US SSNs are checked against
the SSA's never-issued ranges (they have no checksum).

Matching runs over the canonical text form
(:mod:`aiinvariants._internal.canonical`), so digits of every script count
as digits (a card number in fullwidth or Arabic-Indic digits is a card
number) and zero-width characters or exotic spaces inside a number do not
hide it; findings are mapped back to the original span.

Candidates are found with C-speed passes: the text is mapped to a small
alphabet with ``str.translate`` (digit → ``0``, upper-case letter → ``A``),
then digit clusters (digits joined by single separators) and IBAN starts
(``AA00``) are located in the mapped copy. A cluster longer than
:data:`_MAX_CLUSTER` characters is not personal data (tables, hashes), which
also keeps the filter local for streaming.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from aiinvariants._errors import PolicyError
from aiinvariants._internal.canonical import Canonical
from aiinvariants._internal.policy_types import PIIKind
from aiinvariants.filters._base import (
    Action,
    Finding,
    canonical_of,
    check_action,
    fingerprint,
    in_original,
)

__all__ = ["PIIFilter", "PIIKind", "iban_ok", "luhn_ok"]

_KINDS: Final = ("email", "phone", "payment_card", "iban", "national_id")

_MAP: Final = str.maketrans(
    {
        **{chr(c): "#" for c in range(128)},
        **dict.fromkeys("0123456789", "0"),
        **dict.fromkeys("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "A"),
        **dict.fromkeys("abcdefghijklmnopqrstuvwxyz", "a"),
        **{c: c for c in " -./()+\n"},
    }
)
_CLUSTER: Final = re.compile(r"0(?:[ \-./]?0|\) ?0|[ \-]?\(0)*")
# The clusters that can be 7 characters long: each repetition above takes
# exactly one digit (a "0" here) and at most 3 characters, so a cluster of 7
# or more has at least two, and matching from any digit inside a cluster
# ends where the whole cluster ends. Requiring two repetitions skips, inside
# the regex engine, the single digits and short numbers ("v2", "30") the
# scan below would look at in Python only to drop; it finds the same spans.
_LONG_CLUSTER: Final = re.compile(r"0(?:[ \-./]?0|\) ?0|[ \-]?\(0){2,}")
_MAX_CLUSTER: Final = 40
# What could still be part of a finding at the end of a text: an e-mail
# address (no white space), or digits, capitals and the separators numbers
# are written with (phone, card, IBAN, ids). Matched on the reversed tail,
# so finding the start of the trailing run is one C-speed match.
_OPEN_EMAIL: Final = re.compile(r"[A-Za-z0-9._%+\-@]*")
_OPEN_NUMBER: Final = re.compile(r"[0-9A-Z \-./()+]*")
_MAX_OPEN: Final = 400
_EMAIL_LOCAL: Final = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z")
_EMAIL_DOMAIN: Final = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,4}[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9-])"
)
_IBAN: Final = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?"
    r"(?![A-Za-z0-9])"
)
_IBAN_LENGTHS: Final = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VG": 24,
    "XK": 20,
}  # fmt: skip  (ISO 13616 registry lengths)


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards and personnummer."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616: registered country length and the mod-97 check."""
    iban = iban.replace(" ", "")
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_CARD_GROUPED: Final = re.compile(
    r"\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{5}"
)
# How a card number is written: one run of digits, or the groups above.
_CARD_WRITTEN: Final = re.compile(r"\d{13,19}|" + _CARD_GROUPED.pattern)


def _glued(mapped: str, start: int, end: int) -> bool:
    """Whether a letter touches the cluster ``mapped[start:end]``."""
    return (start > 0 and mapped[start - 1] in "aA") or (
        end < len(mapped) and mapped[end] in "aA"
    )


def _unglued(mapped: str, start: int, end: int) -> tuple[int, int]:
    """The cluster ``mapped[start:end]`` without an end group glued to a word.

    In ``4111 1111 1111 1111 0AKIA…`` the ``0`` belongs to the word it is
    glued to, and the groups before it are a number of their own: without
    this, one glued letter hid the whole card (and redacting the word
    revealed it to the next check). A cluster with no separator stays
    whole (and glued, it is dropped: an identifier, not a number).
    """
    if end < len(mapped) and mapped[end] in "aA":
        cut = max(mapped.rfind(c, start, end) for c in " -./()")
        if cut > start:
            end = cut
            while end > start and mapped[end - 1] not in "0":
                end -= 1
    if start and mapped[start - 1] in "aA":
        cut = min(
            (i for i in (mapped.find(c, start, end) for c in " -./()") if i != -1),
            default=-1,
        )
        if cut != -1:
            start = cut
            while start < end and mapped[start] != "0":
                start += 1
    return start, end


def _digits(segment: str) -> str:
    """The ASCII digits of ``segment``, in order."""
    return "".join(c for c in segment if "0" <= c <= "9")


def _card_ok(digits: str) -> bool:
    n = len(digits)
    if not 13 <= n <= 19 or not luhn_ok(digits):
        return False
    two, four = int(digits[:2]), int(digits[:4])
    return (
        digits[0] == "4"  # Visa
        or 51 <= two <= 55  # Mastercard
        or 2221 <= four <= 2720
        or two in (34, 37)  # American Express
        or two in (36, 38, 30)  # Diners
        or digits.startswith(("6011", "65", "644", "645", "646", "647", "648", "649"))
        or two == 35  # JCB
        or two == 62  # UnionPay
    )


def _national_id(segment: str, digits: str) -> str | None:
    if re.fullmatch(r"\d{3}-\d{2}-\d{4}", segment):
        area, group, serial = int(digits[:3]), digits[3:5], digits[5:]
        if area not in (0, 666) and area < 900 and group != "00" and serial != "0000":
            return "pii-us-ssn"
    if len(digits) == 13 and digits.startswith("756"):
        weights = [1, 3] * 6
        check = (
            10
            - sum(int(d) * w for d, w in zip(digits[:12], weights, strict=False)) % 10
        ) % 10
        if check == int(digits[12]):
            return "pii-ch-ahv"
    if (
        len(digits) == 15
        and digits[0] in "12"
        and " " in segment
        and 97 - int(digits[:13]) % 97 == int(digits[13:])
    ):
        return "pii-fr-nir"
    if re.fullmatch(r"\d{6}[-+]\d{4}|\d{8}-\d{4}", segment):
        core = digits[-10:]
        if 1 <= int(core[2:4]) <= 12 and 1 <= int(core[4:6]) <= 31 and luhn_ok(core):
            return "pii-se-personnummer"
    return None


def _phone(segment: str, digits: str, plus: bool) -> bool:
    n = len(digits)
    if plus:
        return 8 <= n <= 15 and digits[0] != "0"
    if re.fullmatch(r"(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}", segment):
        return digits[0] not in "01"
    if digits.startswith("00") and 10 <= n <= 15:
        return True
    return (
        digits[0] == "0"
        and digits[1] != "0"
        and 10 <= n <= 11
        and re.fullmatch(r"\(?0\d{1,4}\)?(?:[ -]\d{2,8}){1,4}", segment) is not None
    )


class PIIFilter:
    """Find personal data: e-mail, phone, payment card, IBAN, national ids.

    Args:
        action: ``"block"`` (default), ``"redact"`` or ``"flag"``. A policy's
            ``outputs.pii`` section defaults to ``"redact"``.
        kinds: which kinds to look for (default: all five).

    Raises:
        PolicyError: an invalid action or kind.
    """

    invariant = "I8"
    max_finding = 360
    context = 8

    def __init__(
        self, *, action: Action = "block", kinds: Iterable[PIIKind] = _KINDS
    ) -> None:
        self.action: Action = check_action(action, where="PIIFilter")
        if isinstance(kinds, str):
            raise PolicyError("PIIFilter kinds= must be a list of kinds")
        chosen = tuple(kinds)
        for kind in chosen:
            if kind not in _KINDS:
                raise PolicyError(f"PIIFilter: unknown kind {kind!r}")
        self.kinds: frozenset[str] = frozenset(chosen)

    def __repr__(self) -> str:
        return f"PIIFilter(action={self.action!r}, kinds={sorted(self.kinds)!r})"

    def scan(self, text: str) -> list[Finding]:
        """Every piece of personal data in ``text``, sorted by start."""
        return self.scan_canonical(canonical_of(text))

    def hold(self, canon: Canonical) -> int:
        """Canonical index from which more text could still change a finding.

        The open span: the trailing run of characters an e-mail address,
        phone number, card number, IBAN or id could still continue.
        """
        text = canon.cased
        tail = text[: -_MAX_OPEN - 1 : -1]
        run = _OPEN_EMAIL.match(tail).end()  # type: ignore[union-attr]
        run = max(run, _OPEN_NUMBER.match(tail).end())  # type: ignore[union-attr]
        return len(text) - run

    def scan_canonical(self, canon: Canonical) -> list[Finding]:
        """Every piece of personal data in the text ``canon`` is the form of."""
        return in_original(canon, self._scan(canon.cased))

    def _scan(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        if "email" in self.kinds:
            self._emails(text, out)
        numeric = self.kinds & {"phone", "payment_card", "national_id"}
        if numeric or "iban" in self.kinds:
            mapped = text.translate(_MAP)
            if numeric:
                self._clusters(text, mapped, out)
            if "iban" in self.kinds:
                pos = mapped.find("AA00")
                while pos != -1:
                    match = _IBAN.match(text, pos)
                    if match and iban_ok(match.group()):
                        out.append(
                            self._finding("pii-iban", match.start(), match.end(), text)
                        )
                    pos = mapped.find("AA00", pos + 1)
        out.sort(key=lambda f: (f.start, f.end, f.rule_id))
        return out

    def _finding(self, rule: str, start: int, end: int, text: str) -> Finding:
        return Finding(
            rule, start, end, "medium", fingerprint(text[start:end]), self.action
        )

    def _emails(self, text: str, out: list[Finding]) -> None:
        at = text.find("@")
        while at != -1:
            local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
            domain = _EMAIL_DOMAIN.match(text, at + 1)
            if local and domain:
                start = local.start()
                while start < at and text[start] == ".":
                    start += 1
                if start < at:
                    out.append(self._finding("pii-email", start, domain.end(), text))
            at = text.find("@", at + 1)

    def _clusters(self, text: str, mapped: str, out: list[Finding]) -> None:
        for match in _LONG_CLUSTER.finditer(mapped):
            start, end = match.span()
            if end - start > _MAX_CLUSTER or end - start < 7:
                continue
            glued = _glued(mapped, start, end)
            if glued and "payment_card" in self.kinds:
                # A card written in groups stays a card with a letter glued
                # to it ("4111 1111 1111 1111X"): light obfuscation.
                segment = text[start:end]
                if _CARD_GROUPED.fullmatch(segment) and _card_ok(_digits(segment)):
                    out.append(self._finding("pii-payment-card", start, end, text))
                    continue
            if glued:
                start, end = _unglued(mapped, start, end)
            if end - start < 7:
                continue
            before = mapped[start - 1] if start else " "
            after = mapped[end] if end < len(mapped) else " "
            if before in "aA" or after in "aA0":
                continue
            plus = before == "+"
            if (before == "(" and end - start <= 14) or plus:
                start -= 1
            segment = text[start:end]
            digits = _digits(segment)
            rule = None
            if "payment_card" in self.kinds and _CARD_WRITTEN.fullmatch(segment):
                rule = "pii-payment-card" if _card_ok(digits) else None
            if rule is None and "national_id" in self.kinds:
                rule = _national_id(segment, digits)
            if rule is None and "phone" in self.kinds and _phone(segment, digits, plus):
                rule = "pii-phone"
            if rule is not None:
                out.append(self._finding(rule, start, end, text))
