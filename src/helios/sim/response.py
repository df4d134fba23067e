"""An ASGI response that plays a planned reply: delays, paced chunks, and deliberate drops.

Starlette's ``StreamingResponse`` cannot leave a body unfinished on purpose, and a
``drop`` fault needs exactly that: returning from the ASGI call with the body incomplete
makes the server close the connection, so the client sees a truncated chunked body (or
headers with no body) and its HTTP library raises at once instead of waiting.

A ``connect`` fault needs even less: the connection closed with nothing sent. ASGI has no
message for that, so the response closes the server's transport itself (uvicorn's request
cycle holds it); under a server that does not expose it, the app raises instead, which
servers answer with a bare 500.

While a reply plays, a second task listens for the client going away, so an abandoned
stream or a long ``timeout`` fault stops at once instead of holding the server open.

Pieces are sent at deadlines counted from the first one's start, not after a sleep each:
every sleep overshoots (epoll waits in whole milliseconds), and over a 32-piece reply the
overshoots added up to as much as 18 ms (bench/pipeline.py), a quarter of a 75 ms reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class Script:
    """What to send and when.

    ``delay_s`` passes before the status line (a ``timeout`` fault, or the whole generation
    time of a plain reply). ``ttft_s`` passes before the first piece (or before the trailer
    when there are no pieces) and ``gaps_s[i]`` before piece ``i + 1``. With
    ``drop_after`` set, the connection closes after that many pieces, trailer unsent.
    With ``abort``, the connection closes before anything is sent.
    """

    media_type: str
    trailer: tuple[bytes, ...]
    preamble: tuple[bytes, ...] = ()
    pieces: tuple[bytes, ...] = ()
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    ttft_s: float = 0.0
    gaps_s: tuple[float, ...] = ()
    drop_after: int | None = None
    abort: bool = False

    @property
    def streamed(self) -> bool:
        return self.media_type == "text/event-stream"


class ScriptedResponse(Response):
    def __init__(self, script: Script) -> None:
        super().__init__(status_code=script.status, media_type=script.media_type)
        self.script = script
        headers = {**script.headers, "content-type": script.media_type}
        if script.streamed:
            headers["cache-control"] = "no-cache"
        else:
            headers["content-length"] = str(sum(len(part) for part in script.trailer))
        self.raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.script.abort:
            await _close_connection(receive)
            return
        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            await self._play(send)
            group.cancel_scope.cancel()

    async def _play(self, send: Send) -> None:
        script = self.script
        await _pause(script.delay_s)
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        for part in script.preamble:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        deadline = anyio.current_time()
        for index, piece in enumerate(script.pieces):
            if script.drop_after is not None and index >= script.drop_after:
                return
            deadline += script.ttft_s if index == 0 else script.gaps_s[index - 1]
            await _pause_until(deadline)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if script.drop_after is not None:
            return
        if not script.pieces:
            await _pause(script.ttft_s)
        trailer = script.trailer or (b"",)
        last = len(trailer) - 1
        for index, part in enumerate(trailer):
            await send({"type": "http.response.body", "body": part, "more_body": index < last})


class ConnectionAborted(RuntimeError):
    """Raised where the server's transport cannot be reached to close it."""


async def _close_connection(receive: Receive) -> None:
    # uvicorn's `receive` is a method of its per-request cycle, which holds the transport.
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        raise ConnectionAborted("connect fault: this server gives no way to close the connection")
    transport.abort()
    # The loop tells the server the connection is gone on its next turn; until then it
    # would answer the unstarted response with a 500 on the dead socket.
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            break
        await anyio.sleep(0)


async def _pause(seconds: float) -> None:
    if seconds > 0:
        await anyio.sleep(seconds)


async def _pause_until(deadline: float) -> None:
    # Not even a checkpoint when the deadline has passed: instant replies stay as cheap.
    if deadline > anyio.current_time():
        await anyio.sleep_until(deadline)
