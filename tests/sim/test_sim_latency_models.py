"""Per-model latency profiles and whole-call durations drawn from a normal distribution."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from typer.testing import CliRunner

import helios.sim
from helios.cli.app import app
from helios.cli.sim import _build_config
from helios.errors import ConfigError
from helios.sim import LatencyProfile, SimConfig, SimServer, SimState

THESIS = LatencyProfile(total_mean_s=0.0754, total_sd_s=0.0349, total_min_s=0.005, seed=11)


def totals(state: SimState, model: str | None, count: int = 5, chunks: int = 10) -> list[float]:
    return [state.pacing(chunks, model).total_s for _ in range(count)]


def test_drawn_durations_follow_the_normal_distribution() -> None:
    state = SimState(SimConfig(latency=THESIS))
    draws = totals(state, None, count=4000)
    # Seeded, so these bounds are checked once and hold on every run; they are several
    # standard errors wide (sd / sqrt(4000) is about 0.55 ms), not tuned to the seed.
    assert statistics.fmean(draws) == pytest.approx(0.0754, abs=0.003)
    assert statistics.stdev(draws) == pytest.approx(0.0349, abs=0.003)
    assert min(draws) >= 0.005


def test_clamp_applies_to_the_whole_duration() -> None:
    tiny = LatencyProfile(total_mean_s=0.0, total_sd_s=0.05, total_min_s=0.01, seed=1)
    draws = totals(SimState(SimConfig(latency=tiny)), None, count=200)
    assert min(draws) == 0.01  # about half the draws fall below the minimum
    assert max(draws) > 0.01


def test_ttft_share_and_the_rest_spread_over_the_chunks() -> None:
    profile = LatencyProfile(total_mean_s=0.2, ttft_fraction=0.25)
    pacing = SimState(SimConfig(latency=profile)).pacing(5)
    assert pacing.ttft_s == pytest.approx(0.05)
    assert pacing.gaps_s == pytest.approx((0.0375,) * 4)
    assert pacing.total_s == pytest.approx(0.2)


@pytest.mark.parametrize("chunks", [0, 1])
def test_a_reply_without_gaps_waits_the_whole_duration_up_front(chunks: int) -> None:
    pacing = SimState(SimConfig(latency=LatencyProfile(total_mean_s=0.2))).pacing(chunks)
    assert (pacing.ttft_s, pacing.gaps_s) == (0.2, ())


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    config = SimConfig(latency=THESIS)
    assert totals(SimState(config), None) == totals(SimState(config), None)
    other = SimConfig(latency=THESIS.model_copy(update={"seed": 12}))
    assert totals(SimState(config), None) != totals(SimState(other), None)


def test_profile_shapes_do_not_mix() -> None:
    with pytest.raises(ValueError, match="ttft_s"):
        LatencyProfile(total_mean_s=0.1, ttft_s=0.02)
    with pytest.raises(ValueError, match="tokens_per_s, jitter"):
        LatencyProfile(total_mean_s=0.1, tokens_per_s=50, jitter=0.1)
    with pytest.raises(ValueError, match="total_sd_s need total_mean_s"):
        LatencyProfile(total_sd_s=0.1)
    with pytest.raises(ValueError):
        LatencyProfile(total_mean_s=0.1, ttft_fraction=1.5)
    with pytest.raises(ValueError):
        LatencyProfile(total_mean_s=-0.1)


def test_a_full_dump_loads_back() -> None:
    config = SimConfig(latency=THESIS, latency_by_model={"judge": LatencyProfile(ttft_s=0.1)})
    assert SimConfig.model_validate_json(config.model_dump_json()) == config


# -- per-model profiles -------------------------------------------------------------------
PER_MODEL = SimConfig(
    latency=LatencyProfile(ttft_s=0.5),
    latency_by_model={
        "thesis": LatencyProfile(total_mean_s=0.075, total_sd_s=0.035),
        "synthesis": LatencyProfile(total_mean_s=0.137, total_sd_s=0.049),
    },
    seed=3,
)


def test_models_use_their_own_profile_and_others_the_default() -> None:
    state = SimState(PER_MODEL)
    assert state.pacing(4, "gpt-5").ttft_s == 0.5
    assert state.pacing(4, None).ttft_s == 0.5
    assert state.pacing(4, "thesis").ttft_s != 0.5
    assert PER_MODEL.latency_for("synthesis").total_mean_s == 0.137
    assert PER_MODEL.latency_for("other") == PER_MODEL.latency


def test_a_models_draws_do_not_depend_on_other_models_calls() -> None:
    alone = totals(SimState(PER_MODEL), "thesis")
    state = SimState(PER_MODEL)
    interleaved = []
    for _ in range(5):
        state.pacing(4, "synthesis")
        state.pacing(4, "gpt-5")
        interleaved.append(state.pacing(10, "thesis").total_s)
    assert interleaved == alone


def test_models_without_a_profile_seed_draw_independent_sequences() -> None:
    same = LatencyProfile(total_mean_s=0.1, total_sd_s=0.03)
    state = SimState(SimConfig(latency_by_model={"a": same, "b": same}))
    assert totals(state, "a") != totals(state, "b")
    reseeded = SimState(SimConfig(latency_by_model={"a": same, "b": same}, seed=1))
    assert totals(reseeded, "a") != totals(SimState(SimConfig(latency_by_model={"a": same})), "a")


def test_models_given_the_same_profile_seed_draw_the_same_sequence() -> None:
    # What a benchmark uses to pair its arms: each arm's model sees the same delays.
    state = SimState(SimConfig(latency_by_model={"thesis-a": THESIS, "thesis-b": THESIS}))
    assert totals(state, "thesis-a") == totals(state, "thesis-b")


def test_reset_replays_per_model_draws() -> None:
    state = SimState(PER_MODEL)
    first = totals(state, "thesis")
    state.reset()
    assert totals(state, "thesis") == first


def test_per_model_latency_is_applied_over_http(make_sim: Callable[..., SimServer]) -> None:
    slow = LatencyProfile(total_mean_s=0.3, ttft_fraction=0.5)
    server = make_sim(SimConfig(latency_by_model={"slow": slow}, reply_tokens=4))

    def body(model: str, stream: bool) -> dict[str, Any]:
        content = [{"role": "user", "content": "Hi"}]
        return {"model": model, "messages": content, "stream": stream}

    with httpx2.Client(base_url=server.base_url, timeout=10) as client:
        started = time.monotonic()
        client.post("/v1/chat/completions", json=body("fast", False)).raise_for_status()
        fast_s = time.monotonic() - started

        started = time.monotonic()
        client.post("/v1/chat/completions", json=body("slow", False)).raise_for_status()
        assert time.monotonic() - started >= 0.3

        started = time.monotonic()
        first_data: float | None = None
        with client.stream("POST", "/v1/chat/completions", json=body("slow", True)) as stream:
            for line in stream.iter_lines():
                if first_data is None and '"delta":{"content":"' in line:
                    first_data = time.monotonic() - started
        total_s = time.monotonic() - started
    assert fast_s < 0.3  # loose: only that the default profile (instant) applied
    assert first_data is not None and first_data >= 0.15
    assert total_s >= 0.3


# -- helios sim --config --------------------------------------------------------------------
def test_config_file_in_yaml_or_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "sim.yaml"
    yaml_file.write_text(
        "seed: 7\nreply_tokens: 12\nlatency_by_model:\n"
        "  thesis: {total_mean_s: 0.0754, total_sd_s: 0.0349, total_min_s: 0.005}\n"
    )
    from_yaml = _build_config(yaml_file, None, None, None, None, None)
    assert from_yaml.seed == 7
    assert from_yaml.reply_tokens == 12
    assert from_yaml.latency_for("thesis").total_sd_s == 0.0349

    json_file = tmp_path / "sim.json"
    json_file.write_text(from_yaml.model_dump_json())
    assert _build_config(json_file, None, None, None, None, None) == from_yaml


def test_options_override_the_file(tmp_path: Path) -> None:
    file = tmp_path / "sim.json"
    file.write_text(json.dumps({"seed": 7, "reply_tokens": 12, "latency": {"ttft_s": 0.2}}))
    config = _build_config(file, None, 50.0, None, 9, 30)
    assert config.latency == LatencyProfile(ttft_s=0.2, tokens_per_s=50.0, seed=9)
    assert (config.seed, config.reply_tokens) == (9, 30)
    # Without a file the options build the config exactly as before --config existed.
    assert _build_config(None, 0.1, None, 0.2, 4, None) == SimConfig(
        latency=LatencyProfile(ttft_s=0.1, jitter=0.2, seed=4), seed=4
    )
    assert _build_config(None, None, None, None, None, None) == SimConfig()


def test_bad_config_files_name_the_file_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read"):
        _build_config(missing, None, None, None, None, None)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        _build_config(listed, None, None, None, None, None)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("latency_by_model: {thesis: {total_mean_s: 0.1, ttft_s: 0.2}}\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: latency_by_model\.thesis"):
        _build_config(wrong, None, None, None, None, None)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("latencies: {}\n")
    with pytest.raises(ConfigError, match="latencies: Extra inputs"):
        _build_config(unknown, None, None, None, None, None)


def test_the_command_serves_the_files_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[SimConfig | None] = []

    def fake_serve(host: str, port: int, config: SimConfig | None = None) -> None:
        served.append(config)

    monkeypatch.setattr(helios.sim, "serve", fake_serve)
    file = tmp_path / "sim.yaml"
    file.write_text("latency_by_model: {judge: {total_mean_s: 0.05}}\n")
    result = CliRunner().invoke(app, ["sim", "--sim-config", str(file), "--reply-tokens", "8"])
    assert result.exit_code == 0, result.output
    assert served == [
        SimConfig(latency_by_model={"judge": LatencyProfile(total_mean_s=0.05)}, reply_tokens=8)
    ]
