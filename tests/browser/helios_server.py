"""A real ``helios serve`` for the browser: the app ``helios serve`` builds, on uvicorn, bound
to 127.0.0.1 on a port the kernel picks, with its ledger, cache and keys in a data
directory of the test's own."""

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
from fastapi import FastAPI

from helios.config.settings import Settings
from helios.server import create_app
from helios.server.state import ServerState

START_TIMEOUT_S = 20.0


def browser_settings(data_dir: Path, **values: Any) -> Settings:
    """Ledger, response cache (L3 off: no embedding model to load) and API keys in
    ``data_dir``; ``values`` replace top-level sections, or merge into them when both are
    mappings (``ledger={"abandoned_after_s": 5}``)."""
    config: dict[str, Any] = {
        "ledger": {"path": str(data_dir / "ledger.sqlite3"), "flush_interval_s": 0.01},
        "cache": {"path": str(data_dir / "cache.sqlite3"), "semantic": {"enabled": False}},
        "keys": {"path": str(data_dir / "keys.sqlite3")},
        # pages, not tasks: and DBOS, one per process, would refuse the second server that
        # some tests start beside the module's
        "tasks": {"enabled": False},
    }
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return Settings.model_validate(config)


@dataclass
class RunningServer:
    url: str
    """``http://127.0.0.1:<port>``, no trailing slash."""
    app: FastAPI
    settings: Settings

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.helios
        return state


@contextmanager
def serve_helios(settings: Settings, **app_options: Any) -> Iterator[RunningServer]:
    """Serve ``create_app(settings, **app_options)`` until the block ends. The socket is
    bound here and handed to uvicorn, so no other process can take the port in between."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    app = create_app(settings, host="127.0.0.1", port=port, **app_options)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="helios-serve", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("helios serve did not start (see the log above)")
            time.sleep(0.01)
        yield RunningServer(f"http://127.0.0.1:{port}", app, settings)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        listener.close()
