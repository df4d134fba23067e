"""SQLite and Redis state shared by several processes: never more granted than the limit."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helios.governance.state.base import GovernorState
from helios.governance.state.sqlite import SQLiteState
from tests.governance.conftest import delete_prefix, redis_url
from tests.governance.reserve_worker import budget

WORKERS = 4
ATTEMPTS = 60
LIMIT = 150.0  # fewer than WORKERS * ATTEMPTS: the workers must race for the last ones
ROOT = Path(__file__).resolve().parents[2]


def run_workers(kind: str, location: str) -> int:
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.governance.reserve_worker",
                kind,
                location,
                str(ATTEMPTS),
                str(LIMIT),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    granted = 0
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        granted += int(out.strip())
    return granted


async def check_totals(state: GovernorState, granted: int) -> None:
    from helios.catalog import Catalog
    from helios.governance.governor import Governor

    governor = Governor(state, [budget(LIMIT)], Catalog([]))
    try:
        statuses = await governor.status()
    finally:
        await governor.close()
    assert granted == LIMIT
    for status in statuses:
        assert status.reserved <= LIMIT
        assert status.reserved == pytest.approx(granted * 1.0)


async def test_sqlite_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "governor.sqlite3"
    granted = run_workers("sqlite", str(path))
    await check_totals(SQLiteState(path), granted)


async def test_redis_across_processes() -> None:
    from helios.governance.state.redis import RedisState

    url = redis_url()
    prefix = f"helios-test:{uuid.uuid4().hex}"
    try:
        granted = run_workers("redis", prefix)
        await check_totals(RedisState(url, prefix=prefix), granted)
    finally:
        await delete_prefix(url, prefix)
