"""Running the simulator: :class:`SimServer` in a background thread, :func:`serve` blocking.

``SimServer`` binds port 0 by default, so the OS picks a free port and there is no race
between choosing one and listening on it; ``base_url`` reports it once started.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from types import TracebackType
from typing import Any

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG

from helios.sim.app import create_app
from helios.sim.config import SimConfig
from helios.sim.state import SimState

# Open streams get this long to finish when the server stops before they are cut.
_GRACEFUL_SHUTDOWN_S = 2
_UNFINISHED = "ASGI callable returned without completing response."


class QuietDrops(logging.Filter):
    """Hides uvicorn's error for a response left unfinished: a ``drop`` fault does it on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _UNFINISHED


def _uvicorn_config(app: Starlette, host: str, port: int, log_level: str) -> uvicorn.Config:
    log_config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    log_config["filters"] = {"quiet_drops": {"()": QuietDrops}}
    log_config["handlers"]["default"]["filters"] = ["quiet_drops"]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config,
        access_log=False,
        lifespan="off",
        ws="none",  # no websocket routes; also keeps the websockets import out
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )


class SimServer:
    """The simulator served by uvicorn on ``host`` in a daemon thread.

    Use it as a context manager (sync or async); ``start()``/``stop()`` work too::

        with SimServer(SimConfig(reply_tokens=8)) as sim:
            client = anthropic.Anthropic(base_url=sim.base_url, api_key="sim")
            sim.state.inject(Fault(kind="rate_limit"))
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.app = create_app(config)
        self.state: SimState = self.app.state.sim
        self.host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not running; call start() or use `with`")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port``, without a trailing slash or API version."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimServer:
        """Start serving and return once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this SimServer is already running")
        server = uvicorn.Server(
            _uvicorn_config(self.app, self.host, self._requested_port, "warning")
        )
        thread = threading.Thread(target=server.run, name="helios-sim", daemon=True)
        thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(
                    f"the simulator could not listen on {self.host}:{self._requested_port}"
                )
            if time.monotonic() > deadline:
                server.should_exit = True
                thread.join(self._startup_timeout_s)
                raise RuntimeError(
                    f"the simulator did not start within {self._startup_timeout_s} s"
                )
            time.sleep(0.005)
        self._server, self._thread = server, thread
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        """Stop serving; open streams get a short grace period, then are cut."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_GRACEFUL_SHUTDOWN_S + 5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        self._server = self._thread = None
        self._port = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SimServer:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: SimConfig | None = None,
    *,
    log_level: str = "warning",
) -> None:
    """Serve the simulator in the foreground until interrupted (``helios sim``)."""
    uvicorn.Server(_uvicorn_config(create_app(config), host, port, log_level)).run()
