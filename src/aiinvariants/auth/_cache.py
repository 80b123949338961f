"""A bounded cache of verified tokens, so a repeated token costs microseconds.

Entries are keyed by the SHA-256 of the token (the token itself is never
stored as a key), hold the verified :class:`~aiinvariants.Principal`, and
expire no later than the token's ``exp``. An entry also remembers which key
verified it: the verifier serves a hit only while that key is still in the
current key set, so a key removed from the JWKS revokes its cached tokens
at the next key-set refresh.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from aiinvariants._errors import PolicyError
from aiinvariants._principal import Principal

__all__ = ["CachedToken", "VerifiedTokenCache", "token_digest"]

_MAX_ENTRIES: Final = 1_000_000


def check_cache_size(value: object, *, where: str) -> int:
    """A ``cache_size=`` argument: an int >= 0, where 0 disables the cache.

    One meaning everywhere (verifiers, introspection, token exchange,
    retrievers).

    Raises:
        PolicyError: not an int, or negative.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(
            f"{where}: cache_size must be an int >= 0 (0 disables the cache)"
        )
    return value


def token_digest(token: str) -> bytes:
    """The cache key of a token: its SHA-256 digest."""
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A verified token's result.

    Attributes:
        principal: the principal the token verified to.
        expires_at: wall-clock time (``time.time()``) after which the entry is
            dead: the token's ``exp``, or sooner.
        key_fingerprint: which key verified it (kid, alg, thumbprint); None
            for tokens not verified by a key (introspection).
    """

    principal: Principal
    expires_at: float
    key_fingerprint: str | None


class VerifiedTokenCache:
    """A thread-safe, bounded map of verified tokens with per-entry expiry.

    Args:
        max_entries: the most tokens kept; the oldest entry goes first (a
            hit does not reorder, so it costs no lock).
        max_ttl_s: an entry lives at most this long, even if the token lives
            longer, so a revoked key or changed policy is picked up in bounded
            time.

    Raises:
        PolicyError: an argument is out of range.
    """

    def __init__(self, *, max_entries: int = 10_000, max_ttl_s: float = 300.0):
        if isinstance(max_entries, bool) or not isinstance(max_entries, int):
            raise PolicyError("max_entries must be an int")
        if not 1 <= max_entries <= _MAX_ENTRIES:
            raise PolicyError(f"max_entries must be between 1 and {_MAX_ENTRIES}")
        if isinstance(max_ttl_s, bool) or not isinstance(max_ttl_s, (int, float)):
            raise PolicyError("max_ttl_s must be a number")
        if not 0 < max_ttl_s <= 86400:
            raise PolicyError("max_ttl_s must be in (0, 86400]")
        self._max = max_entries
        self._ttl = float(max_ttl_s)
        self._entries: OrderedDict[bytes, CachedToken] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, digest: bytes, *, now: float | None = None) -> CachedToken | None:
        """The live entry for ``digest``, or None (an expired one is dropped)."""
        entry = self._entries.get(digest)
        if entry is None:
            self.misses += 1
            return None
        if (time.time() if now is None else now) >= entry.expires_at:
            with self._lock:
                self._entries.pop(digest, None)
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(
        self,
        digest: bytes,
        principal: Principal,
        *,
        exp: float,
        key_fingerprint: str | None,
        now: float | None = None,
    ) -> None:
        """Remember a verified token until ``exp`` (or ``max_ttl_s``)."""
        current = time.time() if now is None else now
        expires_at = min(float(exp), current + self._ttl)
        if expires_at <= current:
            return
        entry = CachedToken(principal, expires_at, key_fingerprint)
        with self._lock:
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def discard(self, digest: bytes) -> None:
        """Forget one token."""
        with self._lock:
            self._entries.pop(digest, None)

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"VerifiedTokenCache({len(self._entries)}/{self._max} entries, "
            f"max_ttl_s={self._ttl:g})"
        )
