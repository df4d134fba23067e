"""What a running task tells the world besides its result, told once even when DBOS replays it.

A task reports two ways: **ledger events** (``task_started``, ``gate_verdict``, ...) into the
runtime's sink, and **stream items** (stages, text chunks, notes, verdicts, the result) into
its DBOS stream, which ``GET /api/v1/tasks/{id}/events`` relays as Server-Sent Events.

A recovered task runs its workflow again from the top; DBOS returns the recorded output of
every step that finished, without running it. Code between steps, though, runs again, so
what it reports would be reported twice. Hence the rule here:

- what the workflow reports **between steps** is *held*; it is published by a step of its
  own just before the next persona call (:meth:`TaskOutput.publish`), so on a replay that
  publishing step is skipped and the held items are dropped: they went out the first time;
- what a persona call reports **while its step runs** (its text as it streams) goes out
  live, written from inside the step (a stream write from workflow code would take a step
  number of its own, and a replay would then read the wrong steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from helios.ledger.events import (
    AsyncFallback,
    ErrorEvent,
    Event,
    EvidenceGathered,
    GateVerdict,
    SecondPass,
    TaskStarted,
)
from helios.ledger.sink import EventSink
from helios.pipeline.results import StageRecord

logger = logging.getLogger("helios.tasks")
StreamItem = dict[str, Any]
StreamWriter = Callable[[list[StreamItem]], Awaitable[None]]
"""Appends one batch of items to the task's stream (``DBOS.write_stream_async``)."""
Flush = Callable[[], Awaitable[None]]
"""Makes the events emitted so far durable (the runtime's ledger flush)."""


class TaskOutput:
    """The task's sink (ledger events) and pipeline observer (stream items) in one.

    ``write`` appends a batch to the stream; ``flush`` makes emitted events durable, and is
    awaited before a step ends, so that DBOS never records a step whose events a crash
    could still lose. ``chunk_flush_s``: text is written at most this often while it streams.
    """

    def __init__(
        self,
        task_id: str,
        sink: EventSink,
        write: StreamWriter,
        flush: Flush,
        *,
        chunk_flush_s: float = 0.005,
        queue_wait_s: float | None = None,
    ) -> None:
        self.task_id = task_id
        self._sink = sink
        self._write = write
        self._flush = flush
        self._chunk_flush_s = chunk_flush_s
        self._queue_wait_s = queue_wait_s
        self._held_events: list[Event] = []
        self._held_items: list[StreamItem] = []
        self._live: list[StreamItem] | None = None
        self._pending_live: list[StreamItem] = []
        self._wake = asyncio.Event()

    # -- EventSink: the pipeline's ledger events ---------------------------------------
    def emit(self, event: Event) -> None:
        if isinstance(event, TaskStarted) and self._queue_wait_s is not None:
            event = event.model_copy(update={"queue_wait_s": round(self._queue_wait_s, 4)})
        self._held_events.append(event)
        item = _stream_item(event)
        if item is not None:
            self._report(item)

    # -- PipelineObserver: stages and text ---------------------------------------------
    def stage_started(self, stage: str, persona: str, pass_number: int, model: str) -> None:
        self._report(
            {
                "type": "stage",
                "stage": stage,
                "persona": persona,
                "pass": pass_number,
                "model": model,
            }
        )

    def chunk(self, stage: str, text: str) -> None:
        self._report({"type": "chunk", "stage": stage, "text": text})

    def stage_restarted(self, stage: str, reason: str) -> None:
        self._report({"type": "restart", "stage": stage, "reason": reason})

    def stage_finished(self, record: StageRecord) -> None:
        self._report({"type": "stage_done", **stage_summary(record)})

    def note(self, message: str) -> None:
        self._report({"type": "note", "message": message})

    def live_note(self, message: str) -> None:
        """A note for this attempt only (the task was recovered): it goes out with the next
        live step, never held, so a later replay does not drop or repeat it."""
        self._pending_live.append({"type": "note", "message": message, "at": time.time()})

    def _report(self, item: StreamItem) -> None:
        item.setdefault("at", time.time())
        if self._live is not None:
            self._live.append(item)
            self._wake.set()
        else:
            self._held_items.append(item)

    # -- publication ---------------------------------------------------------------------
    def take_held(self) -> tuple[list[Event], list[StreamItem]]:
        """What was reported since the last step: for :meth:`publish`'s step (or nobody)."""
        events, items = self._held_events, self._held_items
        self._held_events, self._held_items = [], []
        return events, items

    async def publish(self, held: tuple[list[Event], list[StreamItem]]) -> int:
        """Emit and write what was held, durably; run as a step of its own (see above)."""
        events, items = held
        for event in events:
            self._sink.emit(event)
        if items:
            await self._write(_coalesce(items))
        if events:
            await self._flush()
        return len(events) + len(items)

    async def publish_directly(self) -> None:
        """A task that failed or was cancelled: DBOS will not run it again, so what it held
        is emitted without a step (its stream is over; the server reports how it ended)."""
        events, _ = self.take_held()
        for event in events:
            self._sink.emit(event)
        await self._flush()

    @contextlib.asynccontextmanager
    async def live_step(self) -> AsyncIterator[None]:
        """While a persona call's step runs: its items go out as they come (every
        ``chunk_flush_s`` at most); at its end, the rest, then the ledger flush."""
        self._live = list(self._pending_live)
        self._pending_live = []
        pump = asyncio.create_task(self._pump(), name=f"task-stream-{self.task_id}")
        try:
            yield
        finally:
            live, self._live = self._live, None
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            if live:
                try:
                    await self._write(_coalesce(live))
                except Exception as exc:  # DBOS refuses writes once the task is cancelled
                    logger.debug("task %s: the stream's last items were not written: %s",
                                 self.task_id, exc)  # fmt: skip
            await self._flush()

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._chunk_flush_s:
                await asyncio.sleep(self._chunk_flush_s)  # let a few chunks gather
            live = self._live
            if live:
                batch = live[:]
                del live[: len(batch)]
                await self._write(_coalesce(batch))


def stage_summary(record: StageRecord) -> dict[str, Any]:
    return {
        "stage": record.stage,
        "persona": record.persona,
        "pass": record.pass_number,
        "provider": record.provider,
        "model": record.model,
        "cache": record.cache_layer,
        "ttft_s": round(record.ttft_s, 4),
        "duration_s": round(record.duration_s, 4),
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost_usd": record.cost_usd,
    }


def _stream_item(event: Event) -> StreamItem | None:
    """The pipeline events a follower wants to see, as stream items."""
    if isinstance(event, GateVerdict):
        return {
            "type": "gate",
            "pass": event.pass_number,
            "passed": event.passed,
            "evidence_ok": event.evidence_ok,
            "judge_score": event.judge_score,
            "reasons": [*event.evidence_problems, *event.reasons],
        }
    if isinstance(event, SecondPass):
        return {"type": "second_pass", "pass": event.pass_number, "feedback": event.feedback}
    if isinstance(event, EvidenceGathered):
        return {
            "type": "evidence",
            "documents": event.documents,
            "passages": event.passages,
            "from_cache": event.from_cache,
        }
    if isinstance(event, AsyncFallback):
        return {"type": "note", "message": f"async thesis fell back: {event.reason}"}
    if isinstance(event, ErrorEvent):
        return {"type": "error", "kind": event.kind, "message": event.message}
    return None


def _coalesce(items: list[StreamItem]) -> list[StreamItem]:
    """Consecutive chunks of one stage become one item: fewer, larger SSE messages."""
    merged: list[StreamItem] = []
    for item in items:
        last = merged[-1] if merged else None
        if (
            item["type"] == "chunk"
            and last is not None
            and last["type"] == "chunk"
            and last["stage"] == item["stage"]
        ):
            merged[-1] = {**last, "text": last["text"] + item["text"]}
        else:
            merged.append(item)
    return merged
