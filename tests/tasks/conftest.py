"""Durable tasks on a real DBOS: SQLite in a temporary folder, or the test PostgreSQL in a
schema of its own. DBOS is one per process, so a test opens one task host at a time."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from helios.config.settings import Settings
from helios.messages import Request
from helios.providers.function import FunctionProvider
from helios.runtime import Runtime
from helios.tasks.host import TaskHost

MODEL = "fake:model"
PASSING = json.dumps({"pass": True, "score": 0.9, "reasons": ["sound"]})


def replies(request: Request) -> str:
    """Each persona's scripted answer (the judge passes)."""
    stage = request.context.stage
    return {
        "thesis": "Adopt a modular monolith first [E1].",
        "antithesis": "The thesis ignores deployment independence [E1].",
        "synthesis": "Start with a modular monolith, split later [E1].",
        "judge": PASSING,
        "ask": "Tokyo.",
    }.get(stage or "", "ok")


def task_settings(tmp_path: Path, **tasks: Any) -> Settings:
    return Settings.model_validate(
        {
            "default_model": MODEL,
            "ledger": {"path": str(tmp_path / "ledger.sqlite3")},
            "cache": {"enabled": False},
            "tasks": {
                "system_database_url": f"sqlite:///{tmp_path / 'tasks.sqlite'}",
                "poll_interval_s": 0.02,
                "stream_poll_s": 0.01,
                **tasks,
            },
            "personas": {
                role: {"model": MODEL} for role in ("thesis", "antithesis", "synthesis", "judge")
            },
        }
    )


@pytest.fixture
def make_provider() -> Callable[..., FunctionProvider]:
    def make(fn: Any = replies, **options: Any) -> FunctionProvider:
        return FunctionProvider(fn, name="fake", model="model", **options)

    return make


@pytest.fixture
async def host(
    tmp_path: Path, make_provider: Callable[..., FunctionProvider]
) -> AsyncIterator[TaskHost]:
    provider = make_provider()
    async with (
        Runtime.open(task_settings(tmp_path), providers=[provider]) as runtime,
        TaskHost.open(runtime, executor_id=f"test-{uuid.uuid4().hex[:8]}") as task_host,
    ):
        yield task_host
