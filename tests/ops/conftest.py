"""A real webhook endpoint on 127.0.0.1 for the alert tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class Webhook:
    """A real HTTP endpoint on 127.0.0.1 that fails its first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.bodies: list[dict[str, Any]] = []
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _hook(self, request: Request) -> Response:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return Response(status_code=503)
        self.bodies.append(await request.json())
        return Response(status_code=204)

    def __enter__(self) -> Webhook:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the webhook server did not start"
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    @property
    def url(self) -> str:
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as server:
        yield server


@pytest.fixture
def flaky_webhook() -> Iterator[Webhook]:
    with Webhook(fail_first=2) as server:
        yield server
