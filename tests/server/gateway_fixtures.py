"""A real ``helios serve`` (uvicorn on 127.0.0.1, lifespan included) in front of the provider
simulator, for the official SDKs to talk to."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from helios.config.settings import Settings
from helios.server.app import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_settings(sim_url: str, tmp_path: Path, **values: Any) -> Settings:
    """Anthropic, OpenAI and Gemini served by the simulator; every tier on a simulated model
    (so ``auto`` never loads the local model); cache and ledger in ``tmp_path``."""
    keyed = {"api_key": "sim-key", "max_retries": 0, "timeout_s": 10}
    config: dict[str, Any] = {
        "providers": {
            "anthropic": {"base_url": sim_url, **keyed},
            "openai": {"base_url": sim_url + "/v1", **keyed},
            "gemini": {"base_url": sim_url, **keyed},
        },
        "tiers": {"strong": "opus", "fast": "sonnet", "local": "openai:gpt-5.4-mini"},
        "cache": {
            "path": str(tmp_path / "cache.sqlite3"),
            "semantic": {"enabled": False},
        },
        "ledger": {"path": str(tmp_path / "ledger.sqlite3"), "flush_interval_s": 0.01},
        "keys": {"path": str(tmp_path / "keys.sqlite3")},
    }
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return Settings.model_validate(config)


@dataclass
class Served:
    url: str
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.helios


@contextmanager
def serve(settings: Settings) -> Iterator[Served]:
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{server.config.port}", app)
    finally:
        server.should_exit = True
        thread.join(10)
