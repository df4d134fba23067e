"""The gateway in front of a faulty provider: 200 calls from the official OpenAI SDK at a
30 % seeded fault rate each end answered or failed with a recorded reason; none hangs,
none is lost. And a prompt too long for the model is a 400 naming the field."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import EventQuery
from helios.sim import FaultProfile, SimConfig, SimServer
from tests.server.gateway_fixtures import Served, gateway_settings, serve

CALLS = 200
FAULT_RATE = 0.3
CONCURRENT = 10
MODEL = "openai:gpt-5.4-mini"
ALL_CALLS_LIMIT_S = 180.0  # generous: reaching it means something hung


def faulty_provider(sim: SimServer) -> dict[str, object]:
    return {
        "openai": {
            "base_url": sim.base_url + "/v1",
            "api_key": "sim-key",
            "max_retries": 2,
            "retry_base_delay_s": 0.01,
            "timeout_s": 5,
            "first_token_timeout_s": 0.3,
            "deadline_s": 10,
        }
    }


async def call(sdk: openai.AsyncOpenAI, number: int) -> str:
    """One call's outcome: ``answered``, or ``failed <status>`` with the gateway's status."""
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": f"Question {number}: what is a vector index?"}
    ]
    try:
        if number % 2:
            reply = await sdk.chat.completions.create(model=MODEL, messages=messages)
            assert reply.choices[0].message.content
            return "answered"
        stream = await sdk.chat.completions.create(model=MODEL, messages=messages, stream=True)
        finish = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert finish is not None, f"call {number}: the stream ended without a finish"
        return "answered"
    except openai.APIStatusError as exc:
        return f"failed {exc.status_code}"
    except openai.APIError as exc:  # an error event inside a stream already begun
        if isinstance(exc, openai.APIConnectionError):
            raise  # the gateway itself went away: a lost call, never acceptable
        return "failed in-stream"


async def test_two_hundred_calls_at_a_thirty_percent_fault_rate_are_all_accounted_for(
    make_sim: Callable[..., SimServer], tmp_path: Path
) -> None:
    faults = FaultProfile.mix(
        FAULT_RATE, retry_after_s=0.01, stall_s=5.0, slow_s_per_chunk=0.002, seed=7
    )
    sim = make_sim(SimConfig(reply_tokens=6, seed=7, faults=faults))
    settings = gateway_settings(
        sim.base_url, tmp_path, providers=faulty_provider(sim), cache={"enabled": False}
    )
    gate = asyncio.Semaphore(CONCURRENT)

    async def limited(sdk: openai.AsyncOpenAI, number: int) -> str:
        async with gate:
            return await call(sdk, number)

    with serve(settings) as served:
        async with openai.AsyncOpenAI(
            base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=60
        ) as sdk:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(limited(sdk, number) for number in range(CALLS))),
                ALL_CALLS_LIMIT_S,
            )

    store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
    try:
        events = [e.model_dump() for e in await store.query(EventQuery())]
    finally:
        await store.aclose()
    requests = [e for e in events if e["type"] == "gateway_request"]
    assert len(outcomes) == len(requests) == CALLS  # none lost, in the ledger once each
    answered = outcomes.count("answered")
    assert [r["status"] for r in requests].count(200) == answered
    for failed in (r for r in requests if r["status"] != 200):
        assert failed["error"], failed  # a reason for every failure
    retries = [e for e in events if e["type"] == "error" and e["kind"] == "provider_retry"]
    fired = sim.state.stats.faults_fired
    assert sum(fired.values()) > 0 and retries
    assert answered > CALLS // 2
    why: Counter[str] = Counter(
        f"{r['status']} {_gist(str(r['error']))}" for r in requests if r["status"] != 200
    )
    print(
        f"\n{CALLS} gateway calls at {FAULT_RATE:.0%} faults: {answered} answered, "
        f"{CALLS - answered} failed {dict(Counter(o for o in outcomes if o != 'answered'))}; "
        f"{len(retries)} attempts retried; faults fired {dict(fired)}; "
        f"requests {sim.state.stats.total_requests}; failures {dict(why)}"
    )


def _gist(message: str) -> str:
    """The kind of failure the last attempt met, without numbers and ids."""
    message = message.split(" (earlier attempts")[0]
    for words in (
        "already passed on",
        "no first token",
        "stream interrupted",
        "connection failed",
        "Rate limit",
        "overloaded",
        "had an error",
    ):
        if words in message:
            return words
    return message[:60]


@pytest.fixture
def gateway(sim: SimServer, tmp_path: Path) -> Served:
    with serve(gateway_settings(sim.base_url, tmp_path)) as served:
        yield served  # type: ignore[misc]


def test_a_prompt_too_long_for_the_model_is_a_400_naming_the_field(
    gateway: Served, sim: SimServer
) -> None:
    goal = "word " * 200_000  # about 250,000 tokens; claude-haiku-4-5 holds 200,000
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as info:
            sdk.chat.completions.create(
                model="anthropic:claude-haiku-4-5", messages=[{"role": "user", "content": goal}]
            )
        error = info.value.body
        assert isinstance(error, dict)
        assert error["param"] == "messages" and error["type"] == "invalid_request_error"
        assert "context window of 200,000 tokens" in error["message"]
        with pytest.raises(openai.BadRequestError) as responses:
            sdk.responses.create(model="anthropic:claude-haiku-4-5", input=goal)
        assert isinstance(responses.value.body, dict)
        assert responses.value.body["param"] == "input"
    assert sim.state.stats.total_requests == 0
