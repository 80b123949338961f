"""Judging a value assigned to a credential-named key (part of the ruleset).

``password = "..."``, ``api_key: ...``, ``<twitterToken>...</twitterToken>``,
``Authorization: Basic ...``: the key name says "credential", and the value
decides. A value is reported when it is *strong* (length, character classes,
entropy), never because of a word list, and it is dismissed only when the
*whole* value is a placeholder (``<YOUR_KEY>``, ``${API_KEY}``, ``sk-...``,
``xxxx``, ``your-api-key-here``) or code (``os.environ["X"]``,
``request.headers.get(...)``). A placeholder word *inside* a real value does
not save it: ``Latest-Summer2024!`` and ``Contest88Winner`` are reported.

Written for aiinvariants; the thresholds were chosen on the project's own
generated cases (``tests/fixtures/make_secrets_corpus.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from aiinvariants.filters._assignment_syntax import CHAR_QUOTES, NAME_RHS

__all__ = [
    "VETOES",
    "Assignment",
    "assignment_ok",
    "basic_auth_ok",
    "doc_marker",
    "entropy",
    "is_placeholder",
    "jwt_ok",
    "random_letters",
    "strong_value",
]


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words a placeholder is made of. A value counts as a placeholder only when
# *every* word of it is in this list (or is a tiny number): "YOUR_API_KEY",
# "my-secret-token-123", "insert password here". A real password that
# contains one of them ("Latest-Summer2024!") has other words too.
_WORDS: Final = _wordset(
    """
    a access account admin an and api apikey app auth bar baz bearer change
    changeit changeme client config cred creds credential credentials db
    default demo dev dummy enter env example examples fake foo goes here id
    insert key keys letmein local me mine my mysecret mypassword new none
    null nil old pass passwd passphrase password placeholder private prod
    public put qux real redacted replace root sample secret secrets secure
    service some staging str string super test testing the this token tokens
    todo fixme undefined true false user username value var variable with
    xxx xxxx your yours
    """
)
# Example credentials printed in providers' own documentation (facts, kept
# as data): an answer quoting the docs is not leaking anything. Values that
# end in "EXAMPLE" (AWS's AKIAIOSFODNN7EXAMPLE and kin) need no entry.
_DOC_EXAMPLES: Final = frozenset(
    (
        # Dynatrace, "Tokens and authentication", token format example
        "dt0s01.ST2EY72KQINMH574WMNVI7YN.G3DFPBEJYMODIDAEX454M7YWBUVEFOWKPRVMWFASS"
        "64NFH52PX6BNDVFFM572RZM",
        # Telegram, "Bots: An introduction for developers", the token
        # BotFather hands out in the walkthrough
        "110201543:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw",
    )
)
_WORD: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_SHAPES: Final = re.compile(
    r"""(?x)
    <[^<>]*> | \[[^\[\]]*\] | \{\{.*\}\} | \$\{[^}]*\} | \$\(.*\) |
    \$[A-Za-z_][A-Za-z0-9_]* | %\(?[A-Za-z_]*\)?s | \{[A-Za-z_]*\} |
    \*+ | x+ | X+ | \.+ | …+ | -+ | _+ | 0+ | 1+ | 9+ |
    [A-Za-z0-9_-]{0,16}(?:\.{3,}|…|x{3,}|X{3,}|\*{3,}|<[^<>]*>)[A-Za-z0-9]{0,4}
    """
)
_CODE: Final = re.compile(
    r"""(?x)
    (?:os\.environ|os\.getenv|process\.env|env|ENV|getenv|System\.getenv|
       settings|config|secrets|vars|self|this|params|request|req|args|opts)
    [.\[(] .* |
    [A-Za-z_$][A-Za-z0-9_$]* (?: \.[A-Za-z_$][A-Za-z0-9_$]* )+ (?:\(\))? |
    [A-Za-z_$][A-Za-z0-9_$.]* \( .* |
    [A-Za-z_$][A-Za-z0-9_$.]* \[ .* |     # Optional[str], items[key]
    (?:true|false|null|none|nil|undefined|True|False|None)
    """
)
_IDENTIFIER: Final = re.compile(r"[A-Za-z_$][A-Za-z_$]*")
# Key names that hold something other than a credential, word by word
# (camelCase and snake_case split): passwordHint, token_count, PUBLIC_KEY.
_NOT_A_CREDENTIAL: Final = _wordset(
    """
    hint desc description label prompt message msg policy help reset field
    title name type url uri path file length len size count expiry expires
    expiration ttl regex pattern format strength min max header endpoint id
    ids enabled required rotation version scope scopes method mode kind
    prefix query param counter public publishable pub pubkey site author
    fingerprint hash checksum sha digest csrf xsrf page cursor usage limit
    used tokenizer tokenize tokenized keyword keywords keyframe keyboard
    keying keychain keymap keypad keystroke keyspace keyup keydown keypress
    keycode monkey monkeys turkey hockey donkey whiskey keynote primary
    foreign schema bucket sort cache partition range row lookup index unique
    composite idempotency translation valid chars alphabet compass bypass
    passive passenger passage passport passthrough event file store ref
    """
)
# "key" alone names too many things (primaryKey, sortKey): a key-anchored
# name must also say what kind of key it is, or be "key" / "<service>_key".
_KEY_QUALIFIERS: Final = _wordset(
    """
    api apikey access secret private auth client master signing sign
    encryption crypt license licence account app service admin session
    shared webhook consumer subscription storage token pass password
    credential ssh gpg pgp hmac jwt bearer iam
    """
)
_SEQUENCES: Final = (
    "0123456789",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
)
_MASKED: Final = re.compile(r"([#*xX•])\1{3,}")
_ELLIPSIS: Final = re.compile(r"\.{3}|…")
_VERSION: Final = re.compile(r"\d+\.\d+\.\d+")
# a host name: lower-case labels ending in a letters-only top-level label
_HOSTLIKE: Final = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}/?")
_CONFIG_NAME: Final = re.compile(r"[_.-]")  # DB_PASSWORD, db.password, --token
_PATH: Final = re.compile(r"(?:~|\.{1,2})?(?:/[a-z0-9_.-]+){2,}/?")  # lower-case
_NESTED: Final = re.compile(r"[A-Za-z_][A-Za-z_.-]*=")  # --mount=type=secret,id=x


_SEQ_INDEX: Final = tuple({c: i for i, c in enumerate(seq)} for seq in _SEQUENCES)
_SEQ_START: Final = re.compile(
    "|".join(seq[i : i + 6] for seq in _SEQUENCES for i in range(len(seq) - 5))
)


def _sequential(value: str) -> bool:
    """Most of the value is a keyboard or alphabet run ("abcdef…", "123456…")."""
    low = value.lower()
    if _SEQ_START.search(low) is None:
        return False  # no run of six: the common case, decided in C
    longest = 0
    for index in _SEQ_INDEX:
        run = 1
        prev = -2
        for char in low:
            at = index.get(char, -9)
            run = run + 1 if at == prev + 1 else 1
            prev = at
            longest = max(longest, run)
    return longest >= max(8, -(-3 * len(value) // 5))


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def is_placeholder(value: str) -> bool:
    """True when the *whole* value is a placeholder, never for a part of it."""
    core = value.strip().strip("\"'`")
    if not core or _SHAPES.fullmatch(core):
        return True
    if len(set(core.lower())) <= 2:  # "aaaaaaaa", "abababab"
        return True
    if _ELLIPSIS.search(core) or _sequential(core):
        return True  # "sk-proj-abc...xyz", "abcdefgh1234"
    masked = sum(len(m.group()) for m in _MASKED.finditer(core))
    if masked and masked * 4 >= len(core):
        return True  # "xoxp-1234-####################", "sk_live_XXXXXXXX"
    if doc_marker(core) != -1 or core in _DOC_EXAMPLES:
        # published in a provider's documentation, as the docs write it: the
        # marker ends the value. "EXAMPLE" inside a value is no exemption
        # (a real key with it spliced in is still the real key).
        return True
    words = _WORD.findall(core)
    if sum(map(len, words)) * 5 < len(core) * 3:
        return False  # mostly symbols: "A,.:-¨@*¿?!" is not a word list
    return bool(words) and all(
        w.lower() in _WORDS or (w.isdigit() and len(w) <= 4) for w in words
    )


def doc_marker(value: str) -> int:
    """Where the ``EXAMPLE`` marker of a documentation key starts, or -1.

    AWS's docs end their example keys with it (``AKIAIOSFODNN7EXAMPLE``,
    ``…EXAMPLEKEY``); a marker with more than four characters after it is
    not how the docs write one.
    """
    at = value.rfind("EXAMPLE")
    return at if at != -1 and len(value) - at - 7 <= 4 else -1


def random_letters(value: str) -> bool:
    """Letters drawn at random change case often; a camelCase name does not.

    ``hf_requiredCharacteristicTypesForDisplay…`` is an identifier: a few
    long case runs. A random 34-letter body has a case run every two or three
    letters.
    """
    body = value[value.rfind("_") + 1 :]
    return len(_WORD.findall(body)) * 4 > len(body)


_LOWER: Final = re.compile("[a-z]").search
_UPPER: Final = re.compile("[A-Z]").search
_DIGIT: Final = re.compile("[0-9]").search
_SYMBOL: Final = re.compile("[^A-Za-z0-9_. ]").search


def _classes(value: str) -> int:
    if value.isascii():  # the same test, decided in C
        return (
            (_LOWER(value) is not None)
            + (_UPPER(value) is not None)
            + (_DIGIT(value) is not None)
            + (_SYMBOL(value) is not None)
        )
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() and c not in "_. " for c in value),
        )
    )


def strong_value(value: str) -> bool:
    """Whether ``value`` is strong enough to be a real credential.

    Eight characters or more, at least one letter or digit, not a whole-value
    placeholder, and either three character classes (lower, upper, digit,
    symbol), or two with a digit and some entropy (hex and base36 tokens), or
    two with a long, high-entropy value. A passphrase of four or more words
    is strong too.
    """
    if len(value) < 8 or len(value) > 200 or is_placeholder(value):
        return False
    if not any(c.isalnum() for c in value):
        return False
    if " " in value.strip():
        words = value.split()
        return len(words) >= 4 and len(value) >= 16 and entropy(value) >= 3.0
    classes = _classes(value)
    bits = entropy(value)
    if all(c.isalpha() or c in "_-." for c in value):
        # Letters only: a random string has many short case runs; an
        # identifier ("ClearTextPassword", "SecurityIdentifier") has few.
        return (
            len(value) >= 16
            and bits >= 3.5
            and len(_WORD.findall(value)) * 4 > len(value)
        )
    if classes >= 3:
        return bits >= 2.5
    if classes == 2:
        if any(c.isdigit() for c in value):
            return bits >= 2.5 and sum(c.isalpha() for c in value) >= 2
        symbols = {c for c in value if not c.isalnum() and c not in "_. "}
        return len(symbols) >= 3 or (len(value) >= 12 and bits >= 3.2)
    return len(value) >= 24 and bits >= 3.8  # a long lowercase random string


@dataclass(frozen=True, slots=True)
class Assignment:
    """``name <op> value`` as found in the text.

    Attributes:
        name: the whole key name around the credential keyword.
        value: the value, without its quotes.
        quoted: whether the value was quoted (unquoted identifiers are code).
        after: the character right after the value ("" at the end).
        op: the operator between them (``=``, ``:``, ``=>``, ``,``, ``>``…).
        anchor: the credential keyword the name was found by.
        language: the info string of the fenced code block the assignment
            is in ("" outside one; see
            :data:`~aiinvariants.filters._assignment_syntax.LANGUAGES`).
        quote: the quote character around the value ("" unquoted).
    """

    name: str
    value: str
    quoted: bool
    after: str
    op: str
    anchor: str
    language: str = ""
    quote: str = ""

    @property
    def words(self) -> list[str]:
        """The name split into lower-case words (camelCase and snake_case)."""
        return list(_name_words(self.name))


@lru_cache(maxsize=1024)
def _name_words(name: str) -> tuple[str, ...]:
    """Key names repeat (``password``, ``api_key``): split each once."""
    return tuple(w.lower() for w in _WORD.findall(name) if not w.isdigit())


# Each veto has one job: True when the assignment is *not* a credential.
# The value's strength decides only when no veto applies.


def _a_call(a: Assignment) -> bool:  # password = get_password(...)
    return not a.quoted and a.after in ("(", "[")


def _prose_needs_quotes(a: Assignment) -> bool:  # "the token is ready"
    return not a.quoted and a.op.strip() in {",", "is", "was"}


def _bare_space_outside_config(a: Assignment) -> bool:  # "the password manager"
    # A bare space separates key and value in a flag (--password VALUE) and
    # in config formats whose keys are names, not prose words: Dockerfile
    # ENV DB_PASSWORD VALUE, Java properties db.password VALUE, PASSWORD VALUE.
    # "$API_TOKEN https://…" uses a variable; it does not set one.
    return (
        not a.quoted
        and not a.op.strip()
        and (
            a.name.startswith("$")
            or "://" in a.value
            or (_CONFIG_NAME.search(a.name) is None and not a.name.isupper())
        )
    )


def _a_name_in_code(a: Assignment) -> bool:  # ```python\npassword = db_pass
    # In a language whose literals need quotes, an unquoted right-hand side
    # is a name or an expression, whatever its characters. An XML/HTML
    # element's text (">") and a Markdown table cell ("|") stay values.
    return not a.quoted and a.language in NAME_RHS and a.op.strip() not in (">", "|")


def _a_character_literal(a: Assignment) -> bool:  # ```c\nc = '\\U0001F600';
    # C, Java, Go…: '…' is one character (or one escape), not a string that
    # holds a value. Longer, it is no character literal of any of them: a
    # string in the wrong quotes, and shown as one.
    return (
        a.quote == "'"
        and a.language in CHAR_QUOTES
        and (len(a.value) <= 4 or (a.value[:1] == "\\" and len(a.value) <= 10))
    )


def _a_variable(a: Assignment) -> bool:  # password = user_password; type=secret
    return not a.quoted and (
        _NESTED.match(a.value) is not None or _IDENTIFIER.fullmatch(a.value) is not None
    )


def _a_host_name(a: Assignment) -> bool:  # auth: login.example.com
    return not a.quoted and _HOSTLIKE.fullmatch(a.value) is not None


def _a_path(a: Assignment) -> bool:  # DB_PASSWORD=/run/secrets/db_password
    return _PATH.fullmatch(a.value) is not None


def _too_short(a: Assignment) -> bool:
    return len(a.value) < 8


def _not_a_credential_name(a: Assignment) -> bool:  # passwordHint, max_tokens
    return any(w in _NOT_A_CREDENTIAL for w in a.words)


def _an_unqualified_key(a: Assignment) -> bool:  # primaryKey, sortKey
    words = a.words
    return (
        a.anchor == "key"
        and len(words) > 2
        and not _KEY_QUALIFIERS & set(words)
        and not any(_glued_qualifier(w) for w in words)
    )


def _glued_qualifier(word: str) -> bool:
    """A qualifier glued to "key" in one lower-case word: ``iamapikey``,
    ``awssecretkey`` (the name's parts were not separated)."""
    if len(word) <= 3 or not word.endswith("key"):
        return False
    head = word[:-3]
    return any(head.endswith(q) for q in _KEY_QUALIFIERS if len(q) >= 3)


def _names_itself(a: Assignment) -> bool:  # KEY_NAME = "key-name"
    squashed = re.sub(r"[\W_]", "", a.value).lower()
    return len(squashed) >= 6 and squashed in re.sub(r"[\W_]", "", a.name).lower()


def _a_member_of_that_name(a: Assignment) -> bool:  # KeyPair = X25519.KeyPair
    if a.quoted or "." not in a.value:
        return False
    last = re.sub(r"[\W_]", "", a.value.rsplit(".", 1)[1]).lower()
    return len(last) >= 3 and last == re.sub(r"[\W_]", "", a.name).lower()


def _sops_encrypted(a: Assignment) -> bool:  # password: ENC[AES256_GCM,data:…]
    # SOPS writes every encrypted value in this form (its documented file
    # format): ciphertext, not the secret.
    return a.value.startswith("ENC[AES256_GCM,data:")


def _a_version(a: Assignment) -> bool:  # token: "jjwt-jackson-0.11.2"
    return _VERSION.search(a.value) is not None


def _code(a: Assignment) -> bool:  # settings.API_KEY, os.environ["X"]
    return _CODE.fullmatch(a.value) is not None and sum(map(str.isdigit, a.value)) < 3


VETOES: Final[tuple[Callable[[Assignment], bool], ...]] = (
    _a_call,
    _a_name_in_code,
    _a_character_literal,
    _prose_needs_quotes,
    _bare_space_outside_config,
    _a_variable,
    _a_host_name,
    _a_path,
    _too_short,
    _not_a_credential_name,
    _an_unqualified_key,
    _names_itself,
    _a_member_of_that_name,
    _sops_encrypted,
    _a_version,
    _code,
)
"""The small rules that dismiss an assignment, cheapest first."""


def assignment_ok(assignment: Assignment) -> bool:
    """A credential-named key given a strong value, and no veto applies."""
    for veto in VETOES:
        if veto(assignment):
            return False
    return strong_value(assignment.value)


def jwt_ok(token: str) -> bool:
    """A JWT whose header decodes to a JSON object naming an ``alg``.

    Not a credential: strings that only look like one (the header does not
    decode) and the example token of the JWT specification's tutorials
    (subject ``1234567890``, name ``John Doe``).
    """
    parts = token.split(".")
    try:
        header = json.loads(_b64url(parts[0]))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return False
    if not isinstance(header, dict) or "alg" not in header:
        return False
    try:  # the claims may be cut by the rule's length bound: then not an example
        claims = json.loads(_b64url(parts[1]))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return True
    return not (
        isinstance(claims, dict)
        and claims.get("sub") == "1234567890"
        and claims.get("name") == "John Doe"
    )


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def basic_auth_ok(encoded: str) -> bool:
    """``Authorization: Basic <b64>`` carrying ``user:password`` with a password."""
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    _user, sep, password = raw.partition(b":")
    return (
        bool(sep)
        and len(password) >= 3
        and not is_placeholder(password.decode("latin-1"))
    )
