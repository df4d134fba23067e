"""The key store that settings name: SQLite by default, PostgreSQL when configured.

Opening connects nothing: the store opens its file or its pool on first use, so building
one never blocks the event loop and a command that never touches keys pays nothing.
"""

from __future__ import annotations

from helios.config.keys import KeySettings
from helios.errors import ConfigError, MissingDependency
from helios.keys.sqlite import SQLiteKeyStore
from helios.keys.store import KeyStore


def open_key_store(settings: KeySettings) -> KeyStore:
    if settings.backend == "postgres":
        if not settings.postgres_url:
            raise ConfigError(
                "keys.postgres_url is required when keys.backend is 'postgres'"
                " (postgresql://user:password@host:port/database)"
            )
        try:
            from helios.keys.postgres import PostgresKeyStore
        except ImportError as exc:
            if not (exc.name or "").startswith("psycopg"):
                raise
            raise MissingDependency("psycopg", "postgres", "The PostgreSQL key store") from exc
        return PostgresKeyStore(
            settings.postgres_url,
            schema=settings.postgres_schema,
            breaker=settings.postgres_breaker,
        )
    return SQLiteKeyStore(settings.resolved_path())
