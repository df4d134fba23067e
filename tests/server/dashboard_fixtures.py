"""A seeded ledger for the dashboard's tests (server and browser), and what its pages show
read back from their HTML (the ``data-metric`` / ``data-col`` attributes)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser

from helios.ledger.events import (
    CacheLookup,
    Event,
    GateVerdict,
    PersonaLLMRun,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.store import LedgerStore

PERSONAS = ("thesis", "antithesis", "synthesis", "judge")


def seed_events(now: float, *, tasks: int = 24, old: int = 5) -> list[Event]:
    """``tasks`` tasks over the last 50 minutes (some failed, some not accepted, some
    running, some answered from the cache) and ``old`` tasks two hours ago."""
    events: list[Event] = []
    for n in range(tasks + old):
        inside = n < tasks
        start = now - (n * 120.0 + 30.0 if inside else 7200.0 + n)
        task_id = f"task-{n:03d}"
        events.append(
            TaskStarted(
                task_id=task_id,
                goal=f"goal number {n}",
                timestamp=start,
                flags={"async_thesis": n % 2 == 0},
            )
        )
        if n % 6 == 5:
            continue  # still running
        for index, persona in enumerate(PERSONAS):
            cached = persona == "thesis" and n % 3 == 0
            layer = "L2" if n % 2 == 0 else "L3"
            events.append(
                CacheLookup(
                    task_id=task_id,
                    persona=persona,
                    layer=layer if cached else "L2",
                    hit=cached,
                    timestamp=start + index + 0.1,
                )
            )
            duration = 0.0005 if cached else 0.4 + 0.05 * ((n * 7 + index * 3) % 11)
            events.append(
                PersonaLLMRun(
                    task_id=task_id,
                    persona=persona,
                    stage=persona,
                    provider="sim",
                    model="sim-large",
                    streaming=persona != "judge",
                    ttft_s=duration / 4,
                    duration_s=duration,
                    perceived_improvement=0.75,
                    input_tokens=100,
                    output_tokens=50,
                    cache_read_tokens=40 if persona == "synthesis" else 0,
                    cost_usd=None if (persona == "judge" and n % 5 == 0) else 0.001 * (index + 1),
                    cost_saved_usd=0.002 if cached else None,
                    cache_layer=layer if cached else None,
                    timestamp=start + index + 1 + duration,
                )
            )
        accepted = n % 4 != 3
        success = n % 7 != 4
        events.append(
            GateVerdict(
                task_id=task_id,
                pass_number=1,
                passed=accepted and success,
                evidence_ok=True,
                judge_pass=accepted,
                judge_score=0.8 if accepted else 0.3,
                judge_valid=True,
                timestamp=start + 5.5,
            )
        )
        events.append(
            TaskFinished(
                task_id=task_id,
                success=success,
                duration_s=6.0,
                accepted_pass=1 if accepted and success else None,
                passes=1,
                cost_usd=0.01,
                timestamp=start + 6.0,
            )
        )
    return events


async def seed(store: LedgerStore, now: float | None = None) -> list[Event]:
    events = seed_events(time.time() if now is None else now)
    await store.append(events)
    return events


@dataclass
class Shown:
    """What a page shows: ``metrics[name] = (text, data-value)``; table cells by the
    ``data-*`` key of their row (``data-persona``, ``data-layer``, ``data-task``...) and
    their ``data-col``."""

    metrics: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    rows: dict[str, dict[str, tuple[str, str | None]]] = field(default_factory=dict)
    row_order: list[str] = field(default_factory=list)


VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


class _Reader(HTMLParser):
    ROW_KEYS = ("data-persona", "data-layer", "data-task", "data-arm", "data-flag", "data-tenant")

    def __init__(self) -> None:
        super().__init__()
        self.shown = Shown()
        self.stack: list[tuple[str, str, str, str | None, list[str]]] = []
        self.row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        found = dict(attrs)
        if tag == "tr":
            keys = [f"{k}={found[k]}" for k in self.ROW_KEYS if found.get(k) is not None]
            if "data-metric" in found and "data-arm" in found:  # a difference row
                keys = [f"difference={found['data-metric']}/{found['data-arm']}"]
            self.row = keys[0] if keys else None
            if self.row is not None:
                self.shown.rows.setdefault(self.row, {})
                self.shown.row_order.append(self.row)
            self.stack.append((tag, "", "", None, []))
            return
        if "data-metric" in found:
            entry = (tag, "metric", found["data-metric"] or "", found.get("data-value"), [])
        elif "data-col" in found and self.row is not None:
            entry = (tag, "col", found["data-col"] or "", found.get("data-value"), [])
        else:
            entry = (tag, "", "", None, [])
        self.stack.append(entry)

    def handle_data(self, data: str) -> None:
        for entry in self.stack:
            entry[4].append(data)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            opened, kind, name, value, text = self.stack.pop()
            joined = " ".join("".join(text).split())
            if kind == "metric":
                self.shown.metrics[name] = (joined, value)
            elif kind == "col" and self.row is not None:
                self.shown.rows[self.row][name] = (joined, value)
            if opened == "tr":
                self.row = None
            if opened == tag:
                break


def shown(html: str) -> Shown:
    reader = _Reader()
    reader.feed(html)
    return reader.shown


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
