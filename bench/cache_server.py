"""The servers that bench/cache_http.py loads: Helios's app, and two floors beside it.

All run under uvicorn the same way (one worker, ``httptools`` and ``uvloop`` when
installed, access log off), so that the floors show what the machine, uvicorn and
FastAPI cost before Helios does any work:

- ``asgi``: a bare ASGI app that reads the request and answers fixed bytes (the answer a
  real L2 hit gets, recorded from Helios's server): uvicorn + loopback TCP alone;
- ``fastapi``: a FastAPI route that validates a body of the same shape into a pydantic
  model and answers the same fixed bytes: what the framework adds;
- Helios: ``create_app(settings)``, the real ``/lookup``.

Usage: python bench/cache_server.py --port P (--settings FILE.json | --floor KIND --answer FILE)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from common import temporary_data_dir

PREFIX = "/api/v1/helios/cache"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def server_options() -> dict[str, Any]:
    return {
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "access_log": False,
    }


def helios_app(settings_file: Path) -> Any:
    from helios.config.settings import Settings
    from helios.server.app import create_app

    return create_app(Settings.model_validate(json.loads(settings_file.read_text())))


def asgi_floor(answer: bytes) -> Any:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(answer)).encode()),
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


class LookupBody(BaseModel):
    """The shape of Helios's ``/lookup`` body, without its checks (module level: FastAPI
    resolves the route's annotations here)."""

    input_text: str
    task_type: str = "general"
    system_prompt: str | None = None
    model: str | None = None
    use_l1: bool = True
    use_l2: bool = True
    use_l3: bool = True


def fastapi_floor(answer: bytes) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()

    @app.post(f"{PREFIX}/lookup")
    async def lookup(body: LookupBody) -> Response:
        return Response(answer, media_type="application/json")

    @app.get(f"{PREFIX}/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--settings", type=Path, help="Helios settings (JSON)")
    parser.add_argument("--floor", choices=("asgi", "fastapi"))
    parser.add_argument("--answer", type=Path, help="the floor's fixed answer")
    args = parser.parse_args()
    # what the settings do not place (ledger, governor state) goes nowhere of the user's
    with temporary_data_dir():
        if args.floor is not None:
            answer = args.answer.read_bytes()
            app = asgi_floor(answer) if args.floor == "asgi" else fastapi_floor(answer)
        else:
            app = helios_app(args.settings)
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", **server_options())


if __name__ == "__main__":
    main()
