"""The ledger's schema as named migrations, one list for SQLite and PostgreSQL.

A store records each migration it applies in ``schema_migrations(name, applied_at)`` and,
on open, applies the missing ones in order, inside one transaction that also holds the
database's write lock (SQLite ``BEGIN IMMEDIATE``; a PostgreSQL advisory lock), so two
processes opening the same ledger at once never both apply one. A migration is never
edited once released: a schema change is a new entry at the end of :data:`MIGRATIONS`.

The tables, for both backends::

    events(id, task_id, type, timestamp, version, body)   body: the event's JSON form
    flag_overrides(flag, value, actor, reason, updated_at) value: JSON
    schema_migrations(name, applied_at)

``events.timestamp`` may be NULL: a NaN timestamp (SQLite stores NaN as NULL) must not
make a batch, and with it every later event queued behind it, unwritable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        name="0001_events",
        sqlite=(
            "CREATE TABLE events ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, type TEXT NOT NULL,"
            " timestamp REAL, version INTEGER NOT NULL, body TEXT NOT NULL)",
            "CREATE INDEX events_timestamp ON events (timestamp)",
            "CREATE INDEX events_task_id ON events (task_id)",
            "CREATE INDEX events_type ON events (type)",
        ),
        postgres=(
            "CREATE TABLE events ("
            " id BIGSERIAL PRIMARY KEY, task_id TEXT NOT NULL, type TEXT NOT NULL,"
            " timestamp DOUBLE PRECISION, version INTEGER NOT NULL, body JSONB NOT NULL)",
            "CREATE INDEX events_timestamp ON events (timestamp)",
            "CREATE INDEX events_task_id ON events (task_id)",
            "CREATE INDEX events_type ON events (type)",
        ),
    ),
    Migration(
        name="0002_flag_overrides",
        sqlite=(
            "CREATE TABLE flag_overrides ("
            " flag TEXT PRIMARY KEY, value TEXT NOT NULL, actor TEXT NOT NULL,"
            " reason TEXT NOT NULL, updated_at REAL NOT NULL)",
        ),
        postgres=(
            "CREATE TABLE flag_overrides ("
            " flag TEXT PRIMARY KEY, value JSONB NOT NULL, actor TEXT NOT NULL,"
            " reason TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
        ),
    ),
    Migration(
        # The task list reads task starts by time, newest first, and each one's latest
        # finish by task and type: without the second index SQLite walks every finish of
        # the ledger (the type index) for each task listed.
        name="0003_task_list_indexes",
        sqlite=(
            "CREATE INDEX events_type_timestamp ON events (type, timestamp, id)",
            "CREATE INDEX events_task_id_type ON events (task_id, type, id)",
        ),
        postgres=(
            "CREATE INDEX events_type_timestamp ON events (type, timestamp, id)",
            "CREATE INDEX events_task_id_type ON events (task_id, type, id)",
        ),
    ),
)
"""Every migration, in the order it must be applied."""

MIGRATIONS_TABLE_SQLITE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
)
MIGRATIONS_TABLE_POSTGRES = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)


def pending(applied: set[str]) -> list[Migration]:
    """The migrations not yet in ``applied``, in order."""
    return [migration for migration in MIGRATIONS if migration.name not in applied]
