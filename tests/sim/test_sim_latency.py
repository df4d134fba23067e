"""Latency profiles: seeded, jittered within bounds, and applied (loose lower bounds only)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
import pytest

from helios.sim import LatencyProfile, SimConfig, SimServer, SimState

JITTERY = LatencyProfile(ttft_s=0.5, tokens_per_s=50, jitter=0.2, seed=7)


def plans(state: SimState, count: int = 5) -> list[object]:
    return [state.pacing(10) for _ in range(count)]


def test_same_seed_same_delays() -> None:
    config = SimConfig(latency=JITTERY)
    assert plans(SimState(config)) == plans(SimState(config))


def test_other_seed_other_delays() -> None:
    other = SimConfig(latency=JITTERY.model_copy(update={"seed": 8}))
    assert plans(SimState(SimConfig(latency=JITTERY))) != plans(SimState(other))


def test_profile_without_seed_uses_the_config_seed() -> None:
    profile = JITTERY.model_copy(update={"seed": None})
    same = plans(SimState(SimConfig(latency=profile, seed=3)))
    assert same == plans(SimState(SimConfig(latency=profile, seed=3)))
    assert same != plans(SimState(SimConfig(latency=profile, seed=4)))


def test_reset_replays_the_delays() -> None:
    state = SimState(SimConfig(latency=JITTERY))
    first = plans(state)
    state.reset()
    assert plans(state) == first


def test_jitter_stays_within_its_fraction() -> None:
    state = SimState(SimConfig(latency=JITTERY))
    for _ in range(50):
        pacing = state.pacing(20)
        assert 0.4 <= pacing.ttft_s <= 0.6
        assert len(pacing.gaps_s) == 19
        assert all(0.016 <= gap <= 0.024 for gap in pacing.gaps_s)


def test_no_jitter_and_instant_generation() -> None:
    pacing = SimState(SimConfig(latency=LatencyProfile(ttft_s=0.25))).pacing(4)
    assert (pacing.ttft_s, pacing.gaps_s, pacing.total_s) == (0.25, (0.0, 0.0, 0.0), 0.25)


def test_invalid_profiles_are_rejected() -> None:
    with pytest.raises(ValueError):
        LatencyProfile(tokens_per_s=0)
    with pytest.raises(ValueError):
        LatencyProfile(jitter=1.5)


def test_latency_is_applied_and_text_is_unchanged(
    make_sim: Callable[..., SimServer], sim: SimServer
) -> None:
    slow = make_sim(latency=LatencyProfile(ttft_s=0.2, tokens_per_s=200))
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}
    with httpx2.Client(base_url=slow.base_url, timeout=10) as client:
        started = time.monotonic()
        plain = client.post("/v1/chat/completions", json=body).json()
        assert time.monotonic() - started >= 0.2  # ttft + 4 gaps of 5 ms, so a loose bound
        with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as stream:
            events = [line for line in stream.iter_lines() if line.startswith("data: {")]
    with httpx2.Client(base_url=sim.base_url, timeout=10) as client:
        instant = client.post("/v1/chat/completions", json=body).json()
    assert plain["choices"][0]["message"]["content"] == instant["choices"][0]["message"]["content"]
    assert len(events) == 1 + 5 + 1
