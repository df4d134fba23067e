"""The load generator of bench/gateway.py: keep-alive HTTP/1.1 over raw asyncio streams.

Two ways to load a server:

- :func:`constant_rate` (the open model): request *i* is due at ``start + i / rate`` on a
  fixed clock, whether or not earlier ones have been answered; its latency counts from
  that due time, not from when it was actually written, so a server that stalls is charged
  for every request that waited behind the stall (no coordinated omission). A request
  takes an idle connection, or opens one (the pool grows up to ``max_connections``, then a
  request waits for a connection, still on its clock).
- :func:`closed_loop` (throughput): N connections, each sending one request, reading the
  whole answer, then sending the next, for a fixed window after a warm-up.

Every answer is read completely (``Content-Length`` or chunked), and the reader notes the
moment the first non-empty ``content`` string arrives: for an SSE stream, the first text
delta (TTFT); for a whole answer, its end. Requests are written with one ``write`` on a
``TCP_NODELAY`` socket (no Nagle stalls on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import socket
import statistics
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helios.percentiles import percentile

# a non-empty JSON "content" string: the first text of an answer or of a stream
CONTENT = re.compile(rb'"content":\s*"(?:[^"\\]|\\.)')
STREAM_END = b"data: [DONE]"


def post(path: str, payload: bytes, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


@dataclass(slots=True)
class Answer:
    status: int = 0
    cache_status: str | None = None
    first_ns: int = 0
    """When the first non-empty content arrived (0: none did)."""
    end_ns: int = 0
    complete: bool = False
    """A whole answer was read; a stream also ended with ``data: [DONE]``."""
    error: str | None = None
    body_start: bytes = b""

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200 and self.complete and self.first_ns > 0


def _header(head: bytes, lowered: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case), as sent."""
    at = lowered.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    return head[start : head.find(b"\r\n", start)].strip()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def exchange(self, request: bytes, streaming: bool) -> Answer:
        answer = Answer()
        self.reusable = False  # until the answer has been read to its end
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lowered = head.lower()
        answer.status = int(head[9:12])
        status = _header(head, lowered, b"cache-status")
        answer.cache_status = status.decode() if status is not None else None
        body = bytearray()
        length = _header(head, lowered, b"content-length")
        if length is not None:
            body += await self.reader.readexactly(int(length))
            answer.end_ns = time.perf_counter_ns()
            if CONTENT.search(body):
                answer.first_ns = answer.end_ns
        elif _header(lowered, lowered, b"transfer-encoding") == b"chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers are sent
                    break
                scanned = max(0, len(body) - 64)
                body += (await self.reader.readexactly(size + 2))[:-2]
                if not answer.first_ns and CONTENT.search(body, scanned):
                    answer.first_ns = time.perf_counter_ns()
            answer.end_ns = time.perf_counter_ns()
        else:
            raise RuntimeError(f"an answer with neither length nor chunks: {head[:300]!r}")
        answer.complete = not streaming or STREAM_END in body[-64:]
        answer.body_start = bytes(body[:300])
        self.reusable = _header(lowered, lowered, b"connection") != b"close"
        return answer

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Keep-alive connections to one port, at most ``limit`` in use at once."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(limit)
        self.opened = 0

    async def fill(self, count: int) -> None:
        while len(self.idle) < count:
            self.idle.append(await Connection.open(self.port))
            self.opened += 1

    def _idle(self) -> Connection | None:
        """The most recently used idle connection the server has not closed meanwhile."""
        while self.idle:
            connection = self.idle.pop()
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def exchange(self, request: bytes, streaming: bool, timeout_s: float) -> Answer:
        async with self.slots:
            connection = self._idle()
            for attempt in range(2):
                reused = connection is not None
                try:
                    if connection is None:
                        connection = await Connection.open(self.port)
                        self.opened += 1
                    async with asyncio.timeout(timeout_s):
                        answer = await connection.exchange(request, streaming)
                    break
                except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    if connection is not None:
                        connection.close()
                    connection = None
                    # a kept-alive connection the server closed as we wrote: as HTTP clients
                    # do, send once more on a new one (nothing of the answer was read)
                    unsent = isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
                    stale = reused and (unsent or isinstance(exc, ConnectionResetError))
                    if attempt == 0 and stale:
                        continue
                    failure = f"{type(exc).__name__}: {exc}"
                    return Answer(error=failure, end_ns=time.perf_counter_ns())
            assert connection is not None
            if connection.reusable:
                self.idle.append(connection)
            else:
                connection.close()
            return answer

    def trim(self, keep: int) -> None:
        """Close idle connections beyond the ``keep`` most recently used."""
        while len(self.idle) > keep:
            self.idle.pop(0).close()

    def close(self) -> None:
        self.trim(0)


@dataclass(slots=True)
class Timed:
    due_ns: int
    sent_ns: int
    answer: Answer

    def latency_ms(self, metric: str, *, from_due: bool = True) -> float:
        """``metric`` "ttft" (first content) or "total", from the due time (the open
        model's latency) or from the actual send (the service time)."""
        end = self.answer.first_ns if metric == "ttft" else self.answer.end_ns
        return (end - (self.due_ns if from_due else self.sent_ns)) / 1e6


@dataclass
class Block:
    """One arm's requests at a constant rate, and what the server spent on them."""

    samples: list[Timed]
    seconds: float
    server_cpu_s: float
    max_in_flight: int
    connections_opened: int
    extra: dict[str, Any] = field(default_factory=dict)


async def constant_rate(
    pool: Pool,
    requests: Sequence[bytes],
    rate: float,
    *,
    streaming: bool,
    server_pid: int,
    timeout_s: float,
) -> Block:
    interval_ns = 1e9 / rate
    in_flight = 0
    most = 0

    async def one(due: int, request: bytes) -> Timed:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        sent = time.perf_counter_ns()
        try:
            answer = await pool.exchange(request, streaming, timeout_s)
        finally:
            in_flight -= 1
        return Timed(due, sent, answer)

    opened = pool.opened
    cpu = cpu_seconds(server_pid)
    start = time.perf_counter_ns() + 2_000_000
    tasks: list[asyncio.Task[Timed]] = []
    for i, request in enumerate(requests):
        due = start + round(i * interval_ns)
        wait_ns = due - time.perf_counter_ns()
        if wait_ns > 0:
            await asyncio.sleep(wait_ns / 1e9)
        tasks.append(asyncio.create_task(one(due, request)))
    samples = list(await asyncio.gather(*tasks))
    seconds = (time.perf_counter_ns() - start) / 1e9
    return Block(
        samples,
        seconds,
        cpu_seconds(server_pid) - cpu,
        most,
        pool.opened - opened,
    )


async def closed_loop(
    port: int,
    request: bytes,
    *,
    streaming: bool,
    connections: int,
    duration_s: float,
    warmup_s: float,
    server_pid: int,
) -> dict[str, Any]:
    """Requests per second and latency over ``duration_s`` after ``warmup_s``; every
    answer's status and ``Cache-Status`` counted."""
    opened = [await Connection.open(port) for _ in range(connections)]
    start = time.perf_counter_ns()
    measure_from = start + int(warmup_s * 1e9)
    measure_to = measure_from + int(duration_s * 1e9)
    latencies: list[int] = []
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    usage: dict[str, float] = {}

    async def worker(connection: Connection) -> None:
        while (sent := time.perf_counter_ns()) < measure_to:
            answer = await connection.exchange(request, streaming)
            if measure_from <= answer.end_ns <= measure_to:
                latencies.append(answer.end_ns - sent)
                statuses[f"{answer.status} {answer.cache_status}"] += 1
                if not answer.ok and len(failures) < 3:
                    failures.append(f"{answer.status}: {answer.body_start[:200]!r}")

    async def clock() -> None:
        await asyncio.sleep(max(0.0, (measure_from - time.perf_counter_ns()) / 1e9))
        usage.update(client=time.process_time(), server=cpu_seconds(server_pid))
        await asyncio.sleep(max(0.0, (measure_to - time.perf_counter_ns()) / 1e9))
        usage["client"] = time.process_time() - usage["client"]
        usage["server"] = cpu_seconds(server_pid) - usage["server"]

    try:
        await asyncio.gather(clock(), *(worker(c) for c in opened))
    finally:
        for connection in opened:
            connection.close()
    window_s = (measure_to - measure_from) / 1e9
    ms = [value / 1e6 for value in latencies]
    return {
        "connections": connections,
        "window_s": window_s,
        "requests": len(ms),
        "requests_per_s": len(ms) / window_s,
        "p50_ms": statistics.median(ms) if ms else None,
        "p99_ms": percentile(ms, 0.99) if ms else None,
        "answers": dict(statuses),
        "failures": failures,
        "client_cpu": usage["client"] / window_s,
        "server_cpu": usage["server"] / window_s,
    }


def cpu_seconds(pid: int) -> float:
    """CPU (user + system, all threads) used by ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Under uvloop when installed, as the servers run."""
    if importlib.util.find_spec("uvloop"):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)
    return asyncio.run(coroutine)


@contextlib.contextmanager
def pinned(cores: set[int]) -> Any:
    """This thread on ``cores`` while the block runs (processes started inside inherit)."""
    if not hasattr(os, "sched_getaffinity") or not cores:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)
