"""Audit signing keys: loading them, naming them, signing checkpoints.

A key is named by its *key id*: the first 16 hex digits of the SHA-256 of its
raw 32-byte Ed25519 public key. Every signed record carries the id of the
key that signed it, so a verifier given several public keys (old and new,
across a rotation) picks the right one, and a record signed by a key it does
not trust is reported as such.

The signed message of a checkpoint (or start) record is a short text note,
in the spirit of C2SP signed notes::

    aiinvariants-audit/v2 checkpoint\\n<the record's hash, 64 hex>\\n

The first line separates these signatures from any other use of the key.

cryptography is imported only when a key is loaded or a signature is made or
checked, which keeps ``import aiinvariants`` fast.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

from aiinvariants._errors import PolicyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "NOTE_PREFIX",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "public_keys",
    "sign_note",
    "verify_note",
]

NOTE_PREFIX: Final = b"aiinvariants-audit/v2 checkpoint\n"
"""First line of every signed note."""


def load_signing_key(value: str | bytes) -> Ed25519PrivateKey:
    """Load an Ed25519 private key for signing the audit chain.

    Accepts a PEM ``PRIVATE KEY`` (PKCS#8, unencrypted) or the base64 /
    base64url encoding (padding optional) of the raw 32-byte seed, the form
    that fits in an environment variable.

    Raises:
        PolicyError: the value is not such a key. The message never contains
            any part of the value, and the error is raised without a cause or
            context that could carry it.
    """
    if isinstance(value, str):
        data = value.strip().encode("utf-8", "surrogateescape")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value).strip()
    else:
        raise PolicyError(
            f"an audit signing key must be str or bytes, not {type(value).__name__}"
        )
    if not data:
        raise PolicyError("the audit signing key is empty")
    problem: str | None = None
    key: object = None
    if data.startswith(b"-----BEGIN"):
        key, problem = _load_pem(data)
    else:
        key, problem = _load_seed(data)
    # Raised here, outside any except block, so neither __cause__ nor
    # __context__ can carry a library exception that quotes the input.
    if problem is not None:
        raise PolicyError(problem)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not isinstance(key, Ed25519PrivateKey):
        raise PolicyError(
            f"the audit signing key is a {type(key).__name__}, not an Ed25519 key"
        )
    return key


def _load_pem(data: bytes) -> tuple[object, str | None]:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if b"ENCRYPTED" in data.split(b"\n", 1)[0]:
        return None, "encrypted PEM audit signing keys are not supported"
    try:
        return load_pem_private_key(data, password=None), None
    except (ValueError, TypeError):
        return None, "the audit signing key is not a valid unencrypted PEM key"
    except Exception:  # e.g. UnsupportedAlgorithm; never re-raised
        return None, "the audit signing key is not a supported PEM key"


def _decode_b64(data: bytes) -> bytes | None:
    text = data.translate(None, b" \t\r\n").replace(b"-", b"+").replace(b"_", b"/")
    text += b"=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _load_seed(data: bytes) -> tuple[object, str | None]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = _decode_b64(data)
    if seed is None:
        return None, (
            "the audit signing key is neither PEM nor base64/base64url of a "
            "32-byte Ed25519 seed"
        )
    if len(seed) != 32:
        return None, (
            f"the audit signing key decodes to {len(seed)} bytes; an Ed25519 "
            "seed has 32"
        )
    return Ed25519PrivateKey.from_private_bytes(seed), None


def load_public_key(value: str | bytes, *, source: str = "the key") -> Ed25519PublicKey:
    """Load an Ed25519 public key: PEM ``PUBLIC KEY`` or base64 of the raw 32 bytes.

    Raises:
        PolicyError: the value is not such a key; the message names ``source``.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    data = data.strip()
    key: object = None
    if data.startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(data)
        except (ValueError, TypeError):
            key = None
        except Exception:  # UnsupportedAlgorithm
            key = None
    else:
        raw = _decode_b64(data)
        if raw is not None and len(raw) == 32:
            key = Ed25519PublicKey.from_public_bytes(raw)
    if key is None:
        raise PolicyError(
            f"{source} is not an Ed25519 public key (PEM PUBLIC KEY, or base64 "
            "of the raw 32 bytes)"
        )
    if not isinstance(key, Ed25519PublicKey):
        raise PolicyError(f"{source} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _raw_public(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The key id: first 16 hex digits of SHA-256 over the raw public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return hashlib.sha256(_raw_public(public)).hexdigest()[:16]


def public_keys(
    keys: Ed25519PublicKey | Iterable[Ed25519PublicKey] | None,
) -> Mapping[str, Ed25519PublicKey]:
    """The trusted public keys by key id.

    Raises:
        PolicyError: an item is not an Ed25519 public key, or ``keys`` is an
            empty collection (None, not an empty list, skips the checks).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if keys is None:
        return {}
    items = [keys] if isinstance(keys, Ed25519PublicKey) else list(keys)
    found: dict[str, Ed25519PublicKey] = {}
    for item in items:
        if not isinstance(item, Ed25519PublicKey):
            raise PolicyError(
                f"public keys must be Ed25519PublicKey, not {type(item).__name__}"
            )
        found[key_id(item)] = item
    if not found:
        # An empty key list (e.g. a key directory that came out empty) must
        # not quietly mean "do not check signatures".
        raise PolicyError(
            "public keys were given but none was found; pass None to skip "
            "signature checks"
        )
    return found


def _note(digest: str) -> bytes:
    return NOTE_PREFIX + digest.encode("ascii") + b"\n"


def sign_note(key: Ed25519PrivateKey, digest: str) -> str:
    """Standard base64 of the Ed25519 signature of the note for ``digest``."""
    return base64.b64encode(key.sign(_note(digest))).decode("ascii")


def verify_note(key: Ed25519PublicKey, digest: str, signature: str) -> bool:
    """True when ``signature`` is ``key``'s signature of the note for ``digest``."""
    from cryptography.exceptions import InvalidSignature

    try:
        text = signature.encode("ascii")
        raw = base64.b64decode(text, validate=True)
        if base64.b64encode(raw) != text:
            # Other padding bits decode to the same bytes: one signature,
            # one byte form, as the record's other members have.
            return False
        key.verify(raw, _note(digest))
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True
