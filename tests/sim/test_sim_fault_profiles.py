"""Fault profiles: seeded rates of faults drawn per request, from Python, file and flags."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from pydantic import ValidationError

from helios.cli.sim import _build_config
from helios.errors import ConfigError
from helios.sim import Fault, FaultProfile, SimConfig, SimServer
from helios.sim.config import DEFAULT_MIX
from helios.sim.state import FaultDraws

MESSAGES: list[Any] = [{"role": "user", "content": "Describe the sea."}]


def kinds(profile: FaultProfile, seed: int | str, n: int) -> list[str | None]:
    draws = FaultDraws(profile, seed)
    return [fault.kind if (fault := draws.draw()) else None for _ in range(n)]


def test_draws_follow_the_rates_and_replay_with_the_seed() -> None:
    profile = FaultProfile.mix(0.3)
    first = kinds(profile, 7, 4000)
    assert first == kinds(profile, 7, 4000)
    assert first != kinds(profile, 8, 4000)
    counts = Counter(first)
    assert counts[None] / 4000 == pytest.approx(0.7, abs=0.03)
    assert counts["rate_limit"] / 4000 == pytest.approx(0.3 * DEFAULT_MIX["rate_limit"], abs=0.02)
    assert counts["drop"] / 4000 == pytest.approx(0.3 * DEFAULT_MIX["drop"], abs=0.02)
    five_xx = counts["server_error"] + counts["overloaded"]
    assert five_xx / 4000 == pytest.approx(0.3 * DEFAULT_MIX["server_error"], abs=0.02)
    assert counts["server_error"] > 0 and counts["overloaded"] > 0
    assert {"connect", "stall", "slow"} <= set(counts)


def test_a_zero_profile_draws_nothing_and_one_kind_can_be_certain() -> None:
    assert kinds(FaultProfile(), 0, 50) == [None] * 50
    assert kinds(FaultProfile(connect=1.0), 0, 20) == ["connect"] * 20


def test_profile_parameters_reach_the_fault() -> None:
    profile = FaultProfile(
        rate_limit=0.25,
        stall=0.25,
        drop=0.25,
        slow=0.25,
        retry_after_s=3,
        stall_s=9,
        drop_after_chunks=4,
        slow_s_per_chunk=0.2,
    )
    draws = FaultDraws(profile, 1)
    seen = {fault.kind: fault for fault in (draws.draw() for _ in range(200)) if fault}
    assert seen["rate_limit"].retry_after_s == 3
    assert seen["stall"].seconds == 9
    assert seen["drop"].after_chunks == 4
    assert seen["slow"].seconds_per_chunk == 0.2


def test_rates_adding_past_one_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"add up to 1\.2"):
        FaultProfile(drop=0.6, stall=0.6)
    with pytest.raises(ValueError, match="from 0 to 1"):
        FaultProfile.mix(1.5)


def test_the_server_draws_per_request_and_replays_after_reset(
    make_sim: Callable[..., SimServer],
) -> None:
    config = SimConfig(reply_tokens=4, seed=5, faults=FaultProfile(server_error=0.5))
    sim = make_sim(config)
    body = {"model": "gpt-5", "messages": MESSAGES}

    def statuses() -> list[int]:
        with httpx2.Client(base_url=sim.base_url, timeout=10) as client:
            return [client.post("/v1/chat/completions", json=body).status_code for _ in range(30)]

    first = statuses()
    assert set(first) == {200, 500, 503}
    fired = sim.state.stats.faults_fired
    assert fired["server_error"] + fired["overloaded"] == first.count(500) + first.count(503)
    sim.state.reset()
    assert statuses() == first


def test_a_header_or_queued_fault_wins_over_the_profile(
    make_sim: Callable[..., SimServer],
) -> None:
    sim = make_sim(SimConfig(reply_tokens=4, faults=FaultProfile(server_error=1.0)))
    body = {"model": "gpt-5", "messages": MESSAGES}
    sim.state.inject(Fault(kind="rate_limit"))
    with httpx2.Client(base_url=sim.base_url, timeout=10) as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 429
        headers = {"x-sim-fault": "bad_request"}
        assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 400
        assert client.post("/v1/chat/completions", json=body).status_code in (500, 503)


def test_connect_closes_without_an_answer(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError) as failed:
        openai_client.chat.completions.create(
            model="gpt-5", messages=MESSAGES, extra_headers={"x-sim-fault": "connect"}
        )
    assert not isinstance(failed.value, openai.APITimeoutError)
    # the next request on the same client is answered
    assert openai_client.chat.completions.create(model="gpt-5", messages=MESSAGES).choices


def test_stall_holds_the_first_token_past_the_client_timeout(sim: SimServer) -> None:
    with openai.OpenAI(
        base_url=sim.base_url + "/v1", api_key="sim", max_retries=0, timeout=0.3
    ) as client:
        stream = client.chat.completions.create(
            model="gpt-5",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-sim-fault": "stall;seconds=30"},
        )
        with pytest.raises(openai.APITimeoutError):
            for _ in stream:
                pass


def test_slow_streams_still_finish(openai_client: openai.OpenAI) -> None:
    started = time.monotonic()
    stream = openai_client.chat.completions.create(
        model="gpt-5",
        messages=MESSAGES,
        stream=True,
        max_completion_tokens=4,
        extra_headers={"x-sim-fault": "slow;seconds_per_chunk=0.05"},
    )
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    assert len(text.split()) == 4
    # four chunks, each held back: the stream cannot have come at once
    assert time.monotonic() - started >= 0.2


def test_cli_flags_build_the_profile(tmp_path: Path) -> None:
    config = _build_config(None, None, None, None, 3, None, 0.3, None)
    assert config.faults.total == pytest.approx(0.3)
    assert config.faults.drop == pytest.approx(0.3 * DEFAULT_MIX["drop"])
    mixed = _build_config(None, None, None, None, None, None, 0.2, "drop=0.5,stall_s=5")
    assert mixed.faults.drop == 0.5 and mixed.faults.stall_s == 5
    assert mixed.faults.rate_limit == pytest.approx(0.2 * DEFAULT_MIX["rate_limit"])
    config_file = tmp_path / "sim.yaml"
    config_file.write_text("faults: {connect: 0.1, seed: 4}\n", encoding="utf-8")
    from_file = _build_config(config_file, None, None, None, None, None, None, "slow=0.2")
    assert (from_file.faults.connect, from_file.faults.slow, from_file.faults.seed) == (
        0.1,
        0.2,
        4,
    )


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ("drop", "not name=value"),
        ("bogus=1", "faults.bogus"),
        ("drop=2", "faults.drop"),
        ("drop=0.7,stall=0.7", r"add up to 1\.4"),
    ],
)
def test_bad_fault_flags_name_the_problem(faults: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _build_config(None, None, None, None, None, None, None, faults)
