"""API keys: one per client, shown once, stored as a salted SHA-256 of their secret; checked on every request.

A key reads ``lrk_<key id>_<secret>``: the key id (public, 12 hex digits) finds the stored row, the secret
(32 random bytes) is what the stored hash is of. Keys are random, so a salted SHA-256 is as hard to reverse
as the secret is to guess; a slow hash (scrypt) would cost every request its time without adding to that.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from loanrisk.errors import LoanRiskError
from scoring_api.store import ServingStore, StoredKey, StoreUnavailable

KEY_PREFIX = "lrk"
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEY = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")

MISSING = "missing API key: send it as 'Authorization: Bearer <key>' (riskctl api-key create CLIENT makes one)"
UNKNOWN = "unknown API key"
REVOKED = "API key revoked: ask for a new one (riskctl api-key create CLIENT)"


class ApiKeyError(LoanRiskError):
    """An API key command could not do what was asked (bad client name, client already has a key, ...)."""


class Unauthorized(Exception):
    """The request carries no valid API key; the message says which case it is."""


def key_hash(salt_hex: str, secret: str) -> str:
    """The stored form of a secret: SHA-256 of the salt bytes then the secret, hex."""
    return hashlib.sha256(bytes.fromhex(salt_hex) + secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str, str]:
    """(key to hand out, key id, salt, hash): a fresh key and what is stored of it."""
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    return f"{KEY_PREFIX}_{key_id}_{secret}", key_id, salt, key_hash(salt, secret)


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    m = _KEY.match(key)
    return (m.group(1), m.group(2)) if m else None


def check_client(client: str) -> str:
    """``client`` when it is a valid client name (1-64 of letters, digits, '.', '_', '-')."""
    if not _CLIENT.match(client):
        raise ApiKeyError(f"client name {client!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                        "letter or digit")
    return client


def create_client_key(store: ServingStore, client: str) -> str:
    """A new key for ``client`` (stored hashed); the only time the key itself exists outside the client."""
    key, key_id, salt, digest = new_key()
    if not store.add_key(check_client(client), key_id, salt, digest):
        raise ApiKeyError(f"client {client} already has an API key; revoke it first (riskctl api-key revoke {client})")
    return key


def revoke_client_key(store: ServingStore, client: str) -> None:
    """Revoke ``client``'s key (requests with it get 401 within api.key_cache_s)."""
    if not store.revoke_key(check_client(client)):
        raise ApiKeyError(f"client {client} has no API key to revoke (riskctl api-key list shows them)")


@dataclass
class _Cached:
    stored: StoredKey | None
    fetched_at: float


class Authenticator:
    """Finds the client of a presented key, asking the store at most every ``cache_s`` seconds per key id.

    While the store is unreachable, a key id checked before keeps its last known state (a key never seen
    cannot be checked: StoreUnavailable).
    """

    def __init__(self, store: ServingStore, cache_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.cache_s, self.clock = store, cache_s, clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def _cached(self, key_id: str, now: float) -> tuple[_Cached | None, bool]:
        """The cache entry of ``key_id``, and whether it is younger than ``cache_s`` at ``now``."""
        with self._lock:
            cached = self._cache.get(key_id)
        return cached, cached is not None and now - cached.fetched_at < self.cache_s

    def _stored(self, key_id: str) -> StoredKey | None:
        now = self.clock()
        cached, fresh = self._cached(key_id, now)
        if cached is not None and fresh:
            return cached.stored
        try:
            stored = self.store.key_by_id(key_id)
        except StoreUnavailable:
            if cached is None:
                raise
            return cached.stored
        with self._lock:
            if len(self._cache) > 10_000:  # unknown ids are cached too: bound what a flood of them can hold
                self._cache.clear()
            self._cache[key_id] = _Cached(stored, now)
        return stored

    def client_for(self, key: str | None) -> str:
        """The client whose valid key ``key`` is (Unauthorized otherwise; StoreUnavailable when it cannot tell)."""
        key_id, secret = self._parts(key)
        return self._check(self._stored(key_id), secret)

    def cached_client_for(self, key: str | None) -> str | None:
        """As :meth:`client_for` without a store lookup: None when the key's cache entry is missing or stale (the
        app then asks :meth:`client_for` on a worker thread; the event loop never waits for the store)."""
        key_id, secret = self._parts(key)
        cached, fresh = self._cached(key_id, self.clock())
        return self._check(cached.stored, secret) if cached is not None and fresh else None

    @staticmethod
    def _parts(key: str | None) -> tuple[str, str]:
        if not key:
            raise Unauthorized(MISSING)
        parts = split_key(key)
        if parts is None:
            raise Unauthorized(UNKNOWN)
        return parts

    @staticmethod
    def _check(stored: StoredKey | None, secret: str) -> str:
        if stored is None or not hmac.compare_digest(key_hash(stored.key_salt, secret), stored.key_hash):
            raise Unauthorized(UNKNOWN)
        if stored.revoked_at is not None:
            raise Unauthorized(REVOKED)
        return stored.client
