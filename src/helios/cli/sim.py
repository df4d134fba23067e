"""``helios sim``: the provider simulator, for benchmarks and trying adapters offline."""

from __future__ import annotations

from typing import Annotated

import typer

from helios.cli.context import console_err


def sim(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    ttft: Annotated[
        float, typer.Option("--ttft", help="Seconds before the first token.", min=0)
    ] = 0.0,
    tokens_per_s: Annotated[
        float | None, typer.Option("--tokens-per-s", help="Generation speed; unset = instant.")
    ] = None,
    jitter: Annotated[
        float, typer.Option(help="Relative jitter of delays, 0-1.", min=0, max=1)
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for replies and jitter.")] = 0,
    reply_tokens: Annotated[int, typer.Option(help="Words per reply.", min=1)] = 24,
) -> None:
    """Serve the Anthropic, OpenAI and Gemini wire protocols from a simulator."""
    from helios.sim import LatencyProfile, SimConfig, serve

    config = SimConfig(
        latency=LatencyProfile(ttft_s=ttft, tokens_per_s=tokens_per_s, jitter=jitter, seed=seed),
        reply_tokens=reply_tokens,
        seed=seed,
    )
    console_err.print(
        f"simulator on http://{host}:{port} — Anthropic: base_url=http://{host}:{port}, "
        f"OpenAI: http://{host}:{port}/v1, Gemini: http_options.base_url=http://{host}:{port}"
    )
    serve(host=host, port=port, config=config)
