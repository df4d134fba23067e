"""``helios sim``: the provider simulator, for benchmarks and trying adapters offline.

``--config FILE`` (YAML or JSON) holds a whole :class:`~helios.sim.SimConfig`, which is the
only way to give models their own latency profiles or to draw call durations from a
normal distribution, e.g.::

    seed: 7
    latency_by_model:
      thesis: {total_mean_s: 0.0754, total_sd_s: 0.0349, total_min_s: 0.005}

Options given on the command line override the file's values.
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
        typer.Option("--ttft", help="Seconds before the first token [default: 0].", min=0),
    ] = None,
    tokens_per_s: Annotated[
        float | None, typer.Option("--tokens-per-s", help="Generation speed; unset = instant.")
    ] = None,
    jitter: Annotated[
        float | None,
        typer.Option(help="Relative jitter of delays, 0-1 [default: 0].", min=0, max=1),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for replies and jitter [default: 0].")
    ] = None,
    reply_tokens: Annotated[
        int | None, typer.Option(help="Words per reply [default: 24].", min=1)
    ] = None,
) -> None:
    """Serve the Anthropic, OpenAI and Gemini wire protocols from a simulator."""
    from helios.sim import serve

    config = _build_config(config_file, ttft, tokens_per_s, jitter, seed, reply_tokens)
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
) -> SimConfig:
    from helios.sim import SimConfig

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
    try:
        return SimConfig.model_validate(values)
    except ValidationError as exc:
        where = f"simulator config {config_file}" if config_file else "simulator options"
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {key}: {first['msg']}{more}") from None


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
