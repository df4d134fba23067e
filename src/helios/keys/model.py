"""What an API key is, how it is written, and how its options are spelled.

A key reads ``hk-<id>-<secret>``: ``id`` (12 hex digits) names the stored row, so a
lookup is one primary-key read, never a scan or a comparison with every stored hash;
``secret`` is 43 random letters and digits (about 256 bits). Only the SHA-256 of the whole
key is stored, and the plaintext is returned once, by the store's ``create``.

Options as the CLI and the admin API spell them:

- budget ``<amount><unit>/<window>``: ``20usd/5h``, ``100000tokens/1d``, ``500requests/1h``;
- expiry and windows, a duration ``<n><s|m|h|d|w>``: ``90s``, ``30d``, ``2w``;
- tenant: a letter or digit, then up to 63 letters, digits, ``_``, ``.`` or ``-``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from helios.config.governor import BudgetUnit

KEY_PREFIX = "hk"
ID_LENGTH = 12
SECRET_LENGTH = 43  # 43 characters of 62 carry 256 bits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(rf"^{KEY_PREFIX}-([0-9a-f]{{{ID_LENGTH}}})-([A-Za-z0-9]{{{SECRET_LENGTH}}})$")
_KEY_ID = re.compile(rf"^[0-9a-f]{{{ID_LENGTH}}}$")
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_TENANT = re.compile(TENANT_PATTERN)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_BUDGET = re.compile(r"^(\d+(?:\.\d+)?)(usd|tokens|requests)/(\S+)$")
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

KeyStatus = Literal["active", "revoked", "expired"]


def new_key() -> tuple[str, str]:
    """``(id, plaintext key)`` for a new key, from the operating system's CSPRNG."""
    key_id = secrets.token_hex(ID_LENGTH // 2)
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return key_id, f"{KEY_PREFIX}-{key_id}-{secret}"


def key_id_of(presented: str) -> str | None:
    """The id of a well-formed key, ``None`` for anything else."""
    match = _KEY.match(presented)
    return match.group(1) if match else None


def is_key_id(text: str) -> bool:
    return _KEY_ID.match(text) is not None


def digest(key: str) -> str:
    """What the store keeps of a key: its SHA-256, hex.

    A plain fast hash is right here, unlike for passwords: a key carries 256 random bits, so
    no dictionary or brute-force search of the digest can find it, and a slow hash (bcrypt,
    argon2) would only add tens of milliseconds to every authenticated request.
    """
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def matches(key: str, stored_digest: str) -> bool:
    """Whether ``key`` hashes to ``stored_digest``, compared in constant time so that the
    time taken says nothing about how many leading characters agreed."""
    return hmac.compare_digest(digest(key), stored_digest)


@dataclass(frozen=True)
class KeyBudget:
    """``amount`` units per sliding window of ``window_s`` seconds (``window`` as written)."""

    amount: float
    unit: BudgetUnit
    window: str
    window_s: float

    def __str__(self) -> str:
        return f"{self.amount:g}{self.unit}/{self.window}"


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret (the store never has it back)."""

    id: str
    tenant: str
    created_at: float
    name: str | None = None
    admin: bool = False
    budget: KeyBudget | None = None
    rpm: int | None = None
    """Requests per minute (a sliding 60 s window); ``None``: no limit."""
    models: tuple[str, ...] | None = None
    """The model specs this key may call; ``None``: any."""
    expires_at: float | None = None
    revoked_at: float | None = None

    def status(self, now: float) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


@dataclass(frozen=True)
class NewKey:
    """What ``create`` is asked for, built from values the ``parse_*``/``check_*`` functions
    accepted."""

    tenant: str
    name: str | None = None
    admin: bool = False
    budget: KeyBudget | None = None
    rpm: int | None = None
    models: tuple[str, ...] | None = None
    expires_at: float | None = None


# -- parsing what users write ---------------------------------------------------------------
def parse_duration(text: str) -> float:
    """``30d`` -> 2592000.0; ``ValueError`` (saying what is expected) for anything else."""
    match = _DURATION.match(text.strip())
    seconds = float(match.group(1)) * _SECONDS[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise ValueError(f"'{text}' is not a duration: a number and s, m, h, d or w (e.g. 30d)")
    return seconds


def parse_budget(text: str) -> KeyBudget:
    """``20usd/5h`` -> ``KeyBudget(20, "usd", "5h", 18000)``; ``ValueError`` otherwise."""
    expected = "<amount><usd|tokens|requests>/<window>, e.g. 20usd/5h"
    match = _BUDGET.match(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a budget: {expected}")
    amount = float(match.group(1))
    if amount <= 0:
        raise ValueError(f"'{text}': the amount must be above 0 ({expected})")
    unit: BudgetUnit = match.group(2)  # type: ignore[assignment]  # the regex allows only these
    window = match.group(3)
    try:
        window_s = parse_duration(window)
    except ValueError:
        raise ValueError(
            f"'{text}': the window '{window}' is not a duration ({expected})"
        ) from None
    return KeyBudget(amount, unit, window, window_s)


def check_tenant(text: str) -> str:
    if not _TENANT.match(text):
        raise ValueError(
            f"'{text}' is not a tenant name: a letter or digit, then up to 63 letters,"
            " digits, '_', '.' or '-'"
        )
    return text


def parse_models(text: str) -> tuple[str, ...]:
    """``a,b`` -> ``("a", "b")``: model specs, aliases or ``auto``, none empty."""
    return check_models(text.split(","))


def check_models(models: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(name.strip() for name in models)
    if not names or any(not name or any(c.isspace() for c in name) for name in names):
        raise ValueError("give model specs separated by commas, none empty (e.g. sonnet,gpt-mini)")
    return tuple(dict.fromkeys(names))


def check_rpm(rpm: int) -> int:
    if rpm < 1:
        raise ValueError(f"{rpm} requests per minute: give at least 1")
    return rpm


def iso(epoch: float | None) -> str | None:
    """ISO 8601 in UTC (``2026-01-01T12:00:00+00:00``), ``None`` for ``None``."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def describe(key: ApiKey, now: float) -> dict[str, Any]:
    """A key as ``helios keys list --json`` and the admin API show it: never a secret."""
    return {
        "id": key.id,
        "tenant": key.tenant,
        "name": key.name,
        "admin": key.admin,
        "budget": None if key.budget is None else str(key.budget),
        "rpm": key.rpm,
        "models": None if key.models is None else list(key.models),
        "expires_at": iso(key.expires_at),
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
        "status": key.status(now),
    }
