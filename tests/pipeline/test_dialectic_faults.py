"""50 dialectic tasks against a provider that faults 30 % of its requests (seeded): every
task ends answered or failed with its reason in the ledger, none hangs, none is lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from helios.config.settings import Settings
from helios.errors import HeliosError
from helios.ledger.events import ErrorEvent, TaskFinished
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import EventQuery
from helios.messages import CallContext
from helios.pipeline.runner import run_dialectic
from helios.runtime import Runtime
from helios.sim import FaultProfile, SimConfig, SimServer

TASKS = 50
FAULT_RATE = 0.3
CONCURRENT = 5
MODEL = "openai:gpt-5.4-mini"
TASK_LIMIT_S = 60.0  # far past the provider deadline: reaching it means a task hung


def faulty_sim(make_sim: Callable[..., SimServer]) -> SimServer:
    faults = FaultProfile.mix(
        FAULT_RATE, retry_after_s=0.01, stall_s=5.0, slow_s_per_chunk=0.002, seed=16
    )
    return make_sim(SimConfig(reply_tokens=6, seed=16, faults=faults))


def settings(sim: SimServer, tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {
            "providers": {
                "openai": {
                    "base_url": sim.base_url + "/v1",
                    "api_key": "sim",
                    "max_retries": 2,
                    "retry_base_delay_s": 0.01,
                    "timeout_s": 5,
                    "first_token_timeout_s": 0.3,  # a stall (5 s) fails the attempt
                    "deadline_s": 10,
                }
            },
            "cache": {"enabled": False},
            "ledger": {"path": str(tmp_path / "ledger.sqlite3"), "flush_interval_s": 0.01},
            "orchestration": {"max_passes": 1},
        }
    )


async def test_fifty_tasks_at_a_thirty_percent_fault_rate_all_end_accounted_for(
    make_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    sim = faulty_sim(make_sim)
    outcomes: dict[str, str] = {}
    gate = asyncio.Semaphore(CONCURRENT)

    async def one(runtime: Runtime, number: int) -> None:
        task_id = f"fault-{number:02d}"
        async with gate:
            try:
                await asyncio.wait_for(
                    run_dialectic(
                        f"Question {number}: should we adopt a queue?",
                        runtime=runtime,
                        model=MODEL,
                        context=CallContext(task_id=task_id),
                    ),
                    TASK_LIMIT_S,
                )
                outcomes[task_id] = "answered"
            except TimeoutError:
                outcomes[task_id] = "hung"
            except HeliosError as exc:
                outcomes[task_id] = f"failed: {type(exc).__name__}"

    async with Runtime.open(settings(sim, tmp_path)) as runtime:
        await asyncio.gather(*(one(runtime, number) for number in range(TASKS)))

    store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
    try:
        events = list(await store.query(EventQuery()))
    finally:
        await store.aclose()

    assert len(outcomes) == TASKS and "hung" not in outcomes.values()
    finished = {e.task_id: e for e in events if isinstance(e, TaskFinished)}
    assert sorted(finished) == sorted(outcomes)  # every task ended in the ledger, once each
    assert len([e for e in events if isinstance(e, TaskFinished)]) == TASKS
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    retries = [e for e in errors if e.kind == "provider_retry"]
    reasons: Counter[str] = Counter()
    for task_id, outcome in outcomes.items():
        assert finished[task_id].success is (outcome == "answered"), task_id
        if outcome != "answered":
            [failure] = [e for e in errors if e.task_id == task_id and e.kind != "provider_retry"]
            assert failure.message and failure.stage, failure
            reasons[f"{failure.kind} at {failure.stage}: {_gist(failure.message)}"] += 1
    # the faults were really met, and retried: most calls survived them
    fired = sim.state.stats.faults_fired
    assert sum(fired.values()) > 0 and retries
    assert list(outcomes.values()).count("answered") > TASKS // 2
    print(
        f"\n{TASKS} tasks at {FAULT_RATE:.0%} faults: "
        f"{list(outcomes.values()).count('answered')} answered, "
        f"{TASKS - list(outcomes.values()).count('answered')} failed; "
        f"{len(retries)} attempts retried; faults fired {dict(fired)}; "
        f"requests {sim.state.stats.total_requests}; failures {dict(reasons)}"
    )


def _gist(message: str) -> str:
    """The kind of failure the last attempt met, without numbers and ids."""
    message = message.split(" (earlier attempts")[0]
    for words in ("no first token", "stream interrupted", "connection failed", "Rate limit"):
        if words in message:
            return words
    return message[:60]
