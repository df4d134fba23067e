"""Governor state in a SQLite file: shared by every process on the machine.

Each window is one row holding its state as JSON (a session start and total, or at most
``SLIDING_BUCKETS`` sliding buckets, plus the open reservations). A reservation reads and
writes all its rows inside one ``BEGIN IMMEDIATE`` transaction: the write lock is taken
before anything is read, so two processes can never both see room and both take it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from helios.errors import HeliosError
from helios.governance import windows as w
from helios.governance.state.base import DEFAULT_STALE_AFTER_S, GovernorState
from helios.sqlite_db import SQLiteDatabase, transaction

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS governor_windows (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL
)
"""


def _setup(connection: sqlite3.Connection) -> None:
    connection.execute(_SCHEMA)


class SQLiteState(GovernorState):
    def __init__(
        self,
        path: Path | str,
        *,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.stale_after_s = stale_after_s
        self._db = SQLiteDatabase(
            Path(path),
            what="SQLite governor state",
            error=HeliosError,
            setup=_setup,
            busy_timeout_s=busy_timeout_s,
        )

    async def try_reserve(
        self, reservation_id: str, charges: Sequence[w.Charge], now: float
    ) -> w.ReserveResult:
        def reserve(states: list[w.WindowState]) -> w.ReserveResult:
            return w.try_reserve(states, charges, reservation_id, now, self.stale_after_s)

        return await self._db.run(self._in_transaction([c.window.key for c in charges], reserve))

    async def settle(self, reservation_id: str, charges: Sequence[w.Charge], now: float) -> None:
        def settle(states: list[w.WindowState]) -> None:
            w.settle(states, charges, reservation_id, now, self.stale_after_s)

        await self._db.run(self._in_transaction([c.window.key for c in charges], settle))

    async def usage(self, windows: Sequence[w.WindowSpec], now: float) -> list[w.WindowUsage]:
        def read(connection: sqlite3.Connection) -> list[w.WindowUsage]:
            states = _load(connection, [spec.key for spec in windows])
            result = []
            for spec, state in zip(windows, states, strict=True):
                w.refresh(spec, state, now, self.stale_after_s, begin=False)
                result.append(w.snapshot(spec, state))
            return result

        return await self._db.run(read)

    async def close(self) -> None:
        await self._db.close()

    @staticmethod
    def _in_transaction(
        keys: list[str], operation: Callable[[list[w.WindowState]], T]
    ) -> Callable[[sqlite3.Connection], T]:
        def run(connection: sqlite3.Connection) -> T:
            with transaction(connection):
                states = _load(connection, keys)
                result = operation(states)
                connection.executemany(
                    "INSERT INTO governor_windows (key, state) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET state = excluded.state",
                    [
                        (key, json.dumps(state.to_json()))
                        for key, state in zip(keys, states, strict=True)
                    ],
                )
            return result

        return run


def _load(connection: sqlite3.Connection, keys: list[str]) -> list[w.WindowState]:
    if not keys:
        return []
    marks = ",".join("?" * len(keys))
    rows = connection.execute(
        f"SELECT key, state FROM governor_windows WHERE key IN ({marks})", keys
    ).fetchall()
    found = {key: w.WindowState.from_json(json.loads(text)) for key, text in rows}
    return [found.get(key) or w.WindowState() for key in keys]
