"""The ledger store that settings name: SQLite by default, PostgreSQL when configured.

Opening is lazy: the store connects (and applies its migrations) on first use, so this
never blocks the event loop; ``await store.open(...)`` on the class, or any first call,
reports a bad path or an unreachable server as a :class:`~helios.errors.LedgerError`.
``settings.enabled`` is the caller's decision (whether to record at all); this opens the
store either way.
"""

from __future__ import annotations

from helios.config.ledger import LedgerSettings
from helios.errors import ConfigError, MissingDependency
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import LedgerStore


def open_store(settings: LedgerSettings) -> LedgerStore:
    """The store for ``settings``: SQLite at ``settings.resolved_path()`` (its directory is
    created on first use) or PostgreSQL at ``settings.postgres_url``, in the schema
    ``settings.postgres_schema`` (or the URL's ``search_path``)."""
    if settings.backend == "postgres":
        if not settings.postgres_url:
            raise ConfigError(
                "ledger.postgres_url is required when ledger.backend is 'postgres'"
                " (postgresql://user:password@host:port/database)"
            )
        try:
            from helios.ledger.postgres import PostgresLedgerStore
        except ImportError as exc:
            if not (exc.name or "").startswith("psycopg"):
                raise
            raise MissingDependency("psycopg", "postgres", "The PostgreSQL ledger") from exc
        return PostgresLedgerStore(settings.postgres_url, schema=settings.postgres_schema)
    return SQLiteLedgerStore(settings.resolved_path())
