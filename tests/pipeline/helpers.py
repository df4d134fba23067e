"""A scripted world for pipeline tests: personas answered by a function, evidence on cue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helios.cache.backends.memory import MemoryBackend
from helios.cache.exact import ExactCache
from helios.cache.manager import CacheManager
from helios.call_events import LedgerRecorder
from helios.catalog import Catalog
from helios.config.settings import Settings
from helios.engine import Engine
from helios.ledger.sink import MemorySink
from helios.messages import Request
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.documents import Document
from helios.pipeline.evidence import Evidence, Passage
from helios.pipeline.results import StageRecord
from helios.providers.function import FunctionProvider, Reply
from helios.providers.registry import ProviderRegistry

MODEL = "fake:model"
PASSING_VERDICT = json.dumps({"pass": True, "score": 0.9, "reasons": ["sound"]})
FAILING_VERDICT = json.dumps({"pass": False, "score": 0.2, "reasons": ["too vague"]})


def evidence_of(count: int) -> Evidence:
    passages = tuple(
        Passage(
            id=f"E{i}",
            source=f"docs/notes{i}.md",
            start_line=1,
            end_line=3,
            text=f"Passage {i} about service boundaries.",
            score=1.0 - i / 10,
        )
        for i in range(1, count + 1)
    )
    return Evidence(
        passages=passages,
        documents=1 if count else 0,
        chunks=count,
        from_cache=False,
        embedded_chunks=count,
        duration_s=0.0,
    )


@dataclass
class ScriptedGatherer:
    """Returns fixed evidence after ``delay_s``; records when it started and finished."""

    evidence: Evidence = field(default_factory=lambda: evidence_of(2))
    delay_s: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    async def gather(self, goal: str, documents: Sequence[Document]) -> Evidence:
        self.started_at = time.perf_counter()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.finished_at = time.perf_counter()
        return self.evidence


@dataclass
class Personas:
    """What each persona answers; a value may be a reply or a callable(request) -> reply."""

    thesis: Any = "Adopt a modular monolith first."
    antithesis: Any = "The thesis ignores deployment independence [E1]."
    synthesis: Any = "Start with a modular monolith, split later [E1]."
    judge: Any = PASSING_VERDICT
    dialectic: Any = (
        "THESIS:\nAdopt a modular monolith first.\n"
        "ANTITHESIS:\nIt ignores deployment independence [E1].\n"
        "SYNTHESIS:\nRecommendation: a modular monolith.\nReasons:\n- fewer services [E1]"
    )
    calls: list[tuple[str, float, Request]] = field(default_factory=list)

    def reply(self, request: Request) -> Reply:
        persona = request.context.persona or "?"
        self.calls.append((persona, time.perf_counter(), request))
        answer = getattr(self, persona)
        return answer(request) if callable(answer) else answer

    def called(self, persona: str) -> list[Request]:
        return [request for name, _, request in self.calls if name == persona]


class RecordingObserver:
    def __init__(self) -> None:
        self.chunks: dict[str, list[str]] = {}
        self.records: list[StageRecord] = []
        self.notes: list[str] = []
        self.restarts: list[tuple[str, str]] = []

    def stage_started(self, stage: str, persona: str, pass_number: int, model: str) -> None:
        self.chunks.setdefault(f"{stage}:{pass_number}", [])
        self._key = f"{stage}:{pass_number}"

    def chunk(self, stage: str, text: str) -> None:
        self.chunks[self._key].append(text)

    def stage_restarted(self, stage: str, reason: str) -> None:
        self.restarts.append((self._key, reason))
        self.chunks[self._key] = []

    def stage_finished(self, record: StageRecord) -> None:
        self.records.append(record)

    def note(self, message: str) -> None:
        self.notes.append(message)


@dataclass
class World:
    personas: Personas
    provider: FunctionProvider
    engine: Engine
    sink: MemorySink
    gatherer: ScriptedGatherer
    backend: MemoryBackend
    observer: RecordingObserver

    def pipeline(self, settings: Settings | None = None) -> DialecticPipeline:
        return DialecticPipeline(
            self.engine,
            settings or pipeline_settings(),
            self.gatherer,
            sink=self.sink,
            observer=self.observer,
        )


def pipeline_settings(**orchestration: Any) -> Settings:
    return Settings.model_validate({"default_model": MODEL, "orchestration": orchestration})


def make_world(
    personas: Personas | None = None,
    *,
    gatherer: ScriptedGatherer | None = None,
    cache: bool = True,
    clock: Callable[[], float] = time.time,
    first_chunk_delay_s: float | Callable[[Request], float] = 0.0,
) -> World:
    personas = personas or Personas()
    provider = DelayedProvider(personas.reply, first_chunk_delay_s)
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(default_model=MODEL), catalog)
    registry.add(provider)
    backend = MemoryBackend(max_entries=500, clock=clock)
    sink = MemorySink()
    engine = Engine(
        registry,
        catalog,
        cache=CacheManager(catalog, exact=ExactCache(backend)) if cache else None,
        observers=[LedgerRecorder(sink)],  # the runtime's wiring: the ledger records each call
    )
    return World(
        personas=personas,
        provider=provider,
        engine=engine,
        sink=sink,
        gatherer=gatherer or ScriptedGatherer(),
        backend=backend,
        observer=RecordingObserver(),
    )


class DelayedProvider(FunctionProvider):
    """A FunctionProvider whose first-chunk delay may depend on the request."""

    def __init__(
        self,
        fn: Callable[[Request], Reply],
        delay: float | Callable[[Request], float],
    ) -> None:
        super().__init__(fn, name="fake", model="model", chunk_delay_s=0.0)
        self._delay = delay

    async def stream(self, request: Request):  # type: ignore[no-untyped-def]
        delay = self._delay(request) if callable(self._delay) else self._delay
        if delay:
            await asyncio.sleep(delay)
        async for chunk in super().stream(request):
            yield chunk
