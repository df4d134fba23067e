"""The contract every API key store keeps, and what lives once above the backends.

A backend (SQLite, PostgreSQL) keeps rows: it inserts one, reads one by id, lists them,
marks one revoked and says whether any exists. Everything else lives here, once: making
the id and the secret, hashing, checking a presented key (:func:`authenticate`), and the
row encoding the backends share. Keys are never deleted: a revoked key stays listed, and
its id is never reused.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from helios.breaker import CircuitBreaker
from helios.errors import KeyRejected, KeyStoreError
from helios.keys.model import ApiKey, KeyBudget, NewKey, digest, key_id_of, matches, new_key

_CREATE_TRIES = 3  # an id collision (48 random bits) is retried with a fresh key

COLUMNS = (
    "id, secret_sha256, tenant, name, admin, budget, rpm, models,"
    " expires_at, created_at, revoked_at"
)
Row = tuple[Any, ...]


@dataclass(frozen=True)
class StoredKey:
    """A row as the store holds it: the key's record and the digest of its plaintext."""

    key: ApiKey
    digest: str


Lookup = Callable[[str], Awaitable[StoredKey | None]]


class KeyStore(ABC):
    name: str = "keys"
    breaker: CircuitBreaker | None = None
    """The deadline and circuit breaker of a store on a network server (``None``: local)."""

    # -- what a backend implements --------------------------------------------------------
    @abstractmethod
    async def _insert(self, row: Row) -> bool:
        """Insert a row (in :data:`COLUMNS` order); ``False`` when its id is taken."""

    @abstractmethod
    async def lookup(self, key_id: str) -> StoredKey | None:
        """The row of ``key_id`` (revoked and expired ones included), or ``None``."""

    @abstractmethod
    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first, revoked and expired ones included."""

    @abstractmethod
    async def _mark_revoked(self, key_id: str, at: float) -> None:
        """Set ``revoked_at`` unless it is set already (a second revoke changes nothing)."""

    @abstractmethod
    async def any_keys(self) -> bool:
        """Whether any key was ever created (revoked and expired ones count)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Free connections; the keys persist."""

    # -- what every store does the same way -----------------------------------------------
    async def create(self, new: NewKey, *, now: float | None = None) -> tuple[ApiKey, str]:
        """Store a new key; returns its record and the plaintext key, the one time it is
        ever available (only its digest is stored)."""
        created_at = time.time() if now is None else now
        for _ in range(_CREATE_TRIES):
            key_id, plaintext = new_key()
            key = ApiKey(
                id=key_id,
                tenant=new.tenant,
                created_at=created_at,
                name=new.name,
                admin=new.admin,
                budget=new.budget,
                rpm=new.rpm,
                models=new.models,
                expires_at=new.expires_at,
            )
            if await self._insert(encode(key, digest(plaintext))):
                return key, plaintext
        raise KeyStoreError(f"{self.name}: no free key id after {_CREATE_TRIES} tries")

    async def get(self, key_id: str) -> ApiKey | None:
        stored = await self.lookup(key_id)
        return None if stored is None else stored.key

    async def revoke(self, key_id: str, *, now: float | None = None) -> ApiKey | None:
        """Revoke a key (at once for this store; see ``keys.cache_s`` for running servers);
        returns its record, ``None`` when no key has that id."""
        if await self.lookup(key_id) is None:
            return None
        await self._mark_revoked(key_id, time.time() if now is None else now)
        return await self.get(key_id)

    async def authenticate(self, presented: str, *, now: float | None = None) -> ApiKey:
        """The active key ``presented`` is, or :class:`~helios.errors.KeyRejected`."""
        return await authenticate(presented, self.lookup, time.time() if now is None else now)


async def authenticate(presented: str, lookup: Lookup, now: float) -> ApiKey:
    """Check a presented key against the row its id names.

    A wrong secret reads as ``unknown``, exactly like an id that does not exist, so no answer
    tells a guesser which ids exist; only the holder of the right secret learns that the key
    is ``revoked`` or ``expired``.
    """
    key_id = key_id_of(presented)
    if key_id is None:
        raise KeyRejected("malformed")
    stored = await lookup(key_id)
    if stored is None or not matches(presented, stored.digest):
        raise KeyRejected("unknown")
    status = stored.key.status(now)
    if status != "active":
        raise KeyRejected(status)
    return stored.key


# -- the row encoding both backends share ---------------------------------------------------
def encode(key: ApiKey, key_digest: str) -> Row:
    budget = None
    if key.budget is not None:
        b = key.budget
        budget = json.dumps(
            {"amount": b.amount, "unit": b.unit, "window": b.window, "window_s": b.window_s}
        )
    models = None if key.models is None else json.dumps(list(key.models))
    return (
        key.id,
        key_digest,
        key.tenant,
        key.name,
        key.admin,
        budget,
        key.rpm,
        models,
        key.expires_at,
        key.created_at,
        key.revoked_at,
    )


def decode(row: Row) -> StoredKey:
    (key_id, key_digest, tenant, name, admin, budget, rpm, models, expires, created, revoked) = row
    parsed = None
    if budget is not None:
        b = json.loads(budget)
        parsed = KeyBudget(float(b["amount"]), b["unit"], str(b["window"]), float(b["window_s"]))
    key = ApiKey(
        id=str(key_id),
        tenant=str(tenant),
        created_at=float(created),
        name=name,
        admin=bool(admin),
        budget=parsed,
        rpm=None if rpm is None else int(rpm),
        models=None if models is None else tuple(json.loads(models)),
        expires_at=None if expires is None else float(expires),
        revoked_at=None if revoked is None else float(revoked),
    )
    return StoredKey(key, str(key_digest))
