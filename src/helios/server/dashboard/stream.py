"""``/dashboard/stream``: Server-Sent Events that say the ledger has moved on.

The stream follows the ledger by insertion sequence (as :class:`~helios.ledger.tail.
LedgerTail` does), from its end when the page connected, or from the ``Last-Event-ID`` a
reconnecting browser sends, so nothing recorded in between is missed. Every ``poll_s`` it
reads what is new and, when something is (of the one task asked for, with ``?task=``),
sends one ``ledger`` event: its sequence as the event id, and as data the number of new
events, their types and the tasks they belong to. The page then fetches the part of itself
that changed; the figures are computed once, by the page's own route. A comment line
every ``HEARTBEAT_S`` keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse

from helios.errors import HeliosError
from helios.ledger.store import LedgerStore

HEARTBEAT_S = 15.0
MAX_TASKS_LISTED = 100
RETRY_MS = 3000
"""How long a browser waits before it reconnects a dropped stream."""


async def stream_response(
    request: Request, store: LedgerStore, *, task: str | None, poll_s: float
) -> StreamingResponse:
    cursor = _last_event_id(request)
    if cursor is None:
        cursor = await store.last_sequence()
    return StreamingResponse(
        _events(request, store, cursor, task, poll_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, store: LedgerStore, cursor: int, task: str | None, poll_s: float
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\nid: {cursor}\n: following the ledger\n\n"
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        try:
            rows = await store.events_after(cursor, limit=1000)
        except HeliosError as exc:
            yield f"event: problem\ndata: {json.dumps({'error': str(exc)})}\n\n"
            rows = []
        if rows:
            cursor = rows[-1][0]
            events = [event for _, event in rows if task is None or event.task_id == task]
            if events:
                tasks = sorted({event.task_id for event in events})
                data = {
                    "sequence": cursor,
                    "events": len(events),
                    "types": dict(Counter(event.type for event in events)),
                    "tasks": tasks[:MAX_TASKS_LISTED],
                }
                yield f"id: {cursor}\nevent: ledger\ndata: {json.dumps(data)}\n\n"
                quiet_since = time.monotonic()
            if len(rows) == 1000:
                continue  # more are waiting: no pause
        if time.monotonic() - quiet_since >= HEARTBEAT_S:
            yield ": still here\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(poll_s)


def _last_event_id(request: Request) -> int | None:
    given = request.headers.get("last-event-id", "").strip()
    return int(given) if given.isdigit() else None
