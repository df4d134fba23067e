"""``helios sim``: the provider simulator, for benchmarks and trying adapters offline.

``--config FILE`` (YAML or JSON) holds a whole :class:`~helios.sim.SimConfig`, which is the
only way to give models their own latency profiles or to draw call durations from a
normal distribution, e.g.::

    seed: 7
    latency_by_model:
      thesis: {total_mean_s: 0.0754, total_sd_s: 0.0349, total_min_s: 0.005}

Options given on the command line override the file's values.

Faults drawn per request: ``--fault-rate 0.3`` faults 30 % of requests in a default mix
(429 with Retry-After, 5xx, refused connections, first-token stalls, mid-stream drops,
slow streams); ``--faults drop=0.1,stall=0.05,stall_s=20`` sets rates and parameters by
name (over the mix, if both are given). The draws are seeded by ``--seed``, so a faulty run
can be replayed request for request. In a file: ``faults: {drop: 0.1, seed: 3}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from helios.cli.context import console_err
from helios.errors import ConfigError

if TYPE_CHECKING:
    from helios.sim import SimConfig


def sim(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--sim-config",
            help="Simulator config (YAML or JSON holding a SimConfig; not Helios settings).",
        ),
    ] = None,
    ttft: Annotated[
        float | None,
        typer.Option("--ttft", help="Seconds before the first token. Default: 0.", min=0),
    ] = None,
    tokens_per_s: Annotated[
        float | None, typer.Option("--tokens-per-s", help="Generation speed; unset = instant.")
    ] = None,
    jitter: Annotated[
        float | None,
        typer.Option(help="Relative jitter of delays, 0-1. Default: 0.", min=0, max=1),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for replies and jitter. Default: 0.")
    ] = None,
    reply_tokens: Annotated[
        int | None, typer.Option(help="Words per reply. Default: 24.", min=1)
    ] = None,
    fault_rate: Annotated[
        float | None,
        typer.Option(
            "--fault-rate",
            help="Share of requests faulted, 0-1, in the default mix: 25 % rate_limit "
            "(429 + Retry-After), 20 % server_error (500/503/529), 10 % connect (closed "
            "unanswered), 10 % stall (no first token for stall_s), 25 % drop (stream cut "
            "mid-way), 10 % slow; drawn with --seed. Default: none.",
            min=0,
            max=1,
        ),
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            help="Fault rates and parameters by name, e.g. rate_limit=0.1,drop=0.1,stall=0.05; "
            "parameters: retry_after_s (1), stall_s (60), drop_after_chunks (1), "
            "slow_s_per_chunk (0.5). Given with --fault-rate, these override its mix.",
        ),
    ] = None,
) -> None:
    """Serve the Anthropic, OpenAI and Gemini wire protocols from a simulator.

    Faults can be drawn per request at seeded rates (--fault-rate, --faults), queued with
    POST /_sim/faults, or asked for by one request in an x-sim-fault header.
    """
    from helios.sim import serve

    config = _build_config(
        config_file, ttft, tokens_per_s, jitter, seed, reply_tokens, fault_rate, faults
    )
    console_err.print(
        f"simulator on http://{host}:{port} — Anthropic: base_url=http://{host}:{port}, "
        f"OpenAI: http://{host}:{port}/v1, Gemini: http_options.base_url=http://{host}:{port}"
    )
    serve(host=host, port=port, config=config)


def _build_config(
    config_file: Path | None,
    ttft: float | None,
    tokens_per_s: float | None,
    jitter: float | None,
    seed: int | None,
    reply_tokens: int | None,
    fault_rate: float | None = None,
    faults: str | None = None,
) -> SimConfig:
    from helios.sim import SimConfig
    from helios.sim.config import DEFAULT_MIX

    values = _read_config(config_file) if config_file is not None else {}
    latency: dict[str, Any] = dict(values.get("latency") or {})
    paced = {"ttft_s": ttft, "tokens_per_s": tokens_per_s, "jitter": jitter}
    latency.update({key: value for key, value in paced.items() if value is not None})
    if seed is not None:
        # As before --config existed: the seed drives the default profile too.
        latency["seed"] = seed
        values["seed"] = seed
    if latency:
        values["latency"] = latency
    if reply_tokens is not None:
        values["reply_tokens"] = reply_tokens
    if fault_rate is not None or faults is not None:
        profile: dict[str, Any] = dict(values.get("faults") or {})
        if fault_rate is not None:
            profile.update({kind: fault_rate * share for kind, share in DEFAULT_MIX.items()})
        if faults is not None:
            profile.update(_parse_faults(faults))
        values["faults"] = profile
    try:
        return SimConfig.model_validate(values)
    except ValidationError as exc:
        where = f"simulator config {config_file}" if config_file else "simulator options"
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {key}: {first['msg']}{more}") from None


def _parse_faults(text: str) -> dict[str, str]:
    """``name=value,...`` from ``--faults``; values are checked with the rest of the config."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"--faults: '{item.strip()}' is not name=value, e.g. drop=0.1")
        fields[name.strip()] = value.strip()
    return fields


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"simulator config {path}: cannot read it ({exc.strerror})") from None
    try:
        # YAML is a superset of JSON, so one parser reads both.
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"simulator config {path}: not valid YAML or JSON: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"simulator config {path}: expected a mapping at the top level")
    return raw
