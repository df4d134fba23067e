"""One call, one route: the engine decides once, times the model only, records every call."""

from __future__ import annotations

import asyncio
import time

import pytest

from helios.cache.backends.memory import MemoryBackend
from helios.cache.exact import ExactCache
from helios.cache.manager import CacheManager
from helios.cache.prompt import PromptCachePlanner, WarmPrefixes
from helios.call_events import LedgerRecorder
from helios.catalog import Catalog, Tier
from helios.config.settings import Settings
from helios.engine import CallRecord, Engine
from helios.errors import ProviderUnavailable
from helios.governance.router import EconomicRouter, Route
from helios.ledger.events import CacheLookup, PersonaLLMRun, RouteDecision
from helios.ledger.sink import MemorySink
from helios.messages import CallContext, Request, SamplingParams
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry

OPUS = "anthropic:claude-opus-5-5"
SONNET = "anthropic:claude-sonnet-5-5"
LOCAL = "llamacpp:smollm2-135m-instruct"
TIERS: dict[Tier, str] = {"strong": "opus", "fast": "sonnet", "local": "local"}
HARD = Request.of(
    "Prove step by step why the integral of x^2 from 0 to 3 is 9; compare both derivations.",
    model="auto",
    task_type="reasoning",
    params=SamplingParams(max_tokens=3000),
)


class CountingRouter(EconomicRouter):
    """The real policy, counting its decisions."""

    decisions = 0

    def decide(self, request: Request) -> Route:
        self.decisions += 1
        return super().decide(request)


class Recorder:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def on_call(self, record: CallRecord) -> None:
        self.records.append(record)


def world(
    replies: dict[str, list[object]] | None = None, *, cache: CacheManager | None = None
) -> tuple[Engine, CountingRouter, MemorySink, Recorder]:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    for spec in (OPUS, SONNET, LOCAL):
        name, _, model = spec.partition(":")
        scripted = (replies or {}).get(spec)
        double = (
            FunctionProvider(replies=scripted, name=name, model=model)  # type: ignore[arg-type]
            if scripted is not None
            else FunctionProvider(lambda r, m=model: f"answer from {m}", name=name, model=model)
        )
        registry.add(double)
    router = CountingRouter(registry, catalog, TIERS)
    sink, recorder = MemorySink(), Recorder()
    engine = Engine(
        registry,
        catalog,
        router=router,
        cache=cache,
        tiers=TIERS,
        observers=[LedgerRecorder(sink), recorder],
    )
    return engine, router, sink, recorder


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("spec", ["auto", "sonnet"])
async def test_the_router_decides_exactly_once_per_call(streaming: bool, spec: str) -> None:
    engine, router, _, _ = world({OPUS: [ProviderUnavailable("overloaded")]})
    request = HARD.with_model(spec)
    if streaming:
        stream = engine.stream(request)
        text = "".join([chunk.text async for chunk in stream])
    else:
        text = (await engine.complete(request)).text
    assert text  # answered: by sonnet, itself or as opus's fallback
    assert router.decisions == 1


async def test_a_cache_hit_needs_no_route() -> None:
    cache = CacheManager(Catalog.load(), exact=ExactCache(MemoryBackend()))
    engine, router, sink, _ = world(cache=cache)
    first = await engine.complete(HARD)
    second = await engine.complete(HARD)
    assert second.cache_layer == "L2" and second.text == first.text
    assert router.decisions == 1
    hits = [event.hit for event in sink.of_type(CacheLookup)]
    assert hits == [False, True]


async def test_every_event_of_an_auto_call_carries_its_task_id() -> None:
    engine, _, sink, _ = world({OPUS: [ProviderUnavailable("overloaded")]})
    request = HARD.with_context(task_id="t-42", stage="synthesis", persona="synthesis")
    completion = await engine.complete(request)
    assert completion.model == "claude-sonnet-5-5"  # opus failed: its fallback answered
    assert {event.task_id for event in sink.events} == {"t-42"}
    decided, fell_back = sink.of_type(RouteDecision)
    assert (decided.model, decided.tier, decided.persona) == (OPUS, "strong", "synthesis")
    assert fell_back.model == SONNET and fell_back.reason.startswith(f"fallback: {OPUS} failed")
    [run] = sink.of_type(PersonaLLMRun)
    assert (run.stage, run.persona, run.model) == ("synthesis", "synthesis", "claude-sonnet-5-5")


async def test_a_call_without_a_task_gets_one_so_its_events_join() -> None:
    engine, _, sink, recorder = world()
    await engine.complete(Request.of("hi", model="sonnet"))
    [record] = recorder.records
    assert record.request.context.task_id is not None
    assert {event.task_id for event in sink.events} == {record.request.context.task_id}
    assert sink.of_type(RouteDecision) == []  # an explicit model that answered: no decision


async def test_all_fail_raises_the_last_error_and_records_each_fallback() -> None:
    down = [ProviderUnavailable("down")]
    engine, _, sink, recorder = world({OPUS: down, SONNET: list(down), LOCAL: list(down)})
    with pytest.raises(ProviderUnavailable):
        await engine.complete(HARD)
    assert len(sink.of_type(RouteDecision)) == 3
    [record] = recorder.records
    assert record.completion is None and (record.provider, record.model) == (
        "llamacpp",
        "smollm2-135m-instruct",
    )


async def test_a_stream_falls_back_only_before_its_first_chunk() -> None:
    engine, _, _, _ = world({OPUS: [["par", ProviderUnavailable("dropped")]]})
    with pytest.raises(ProviderUnavailable):
        async for _chunk in engine.stream(HARD):
            pass


class SlowToBuild(FunctionProvider):
    """A provider whose construction and warm-up are slow (an SDK import, a model load)."""

    def __init__(self) -> None:
        time.sleep(0.3)
        super().__init__(lambda r: "quick reply", name="slow", model="m", chunk_delay_s=0.001)
        self.warmed = False

    async def warm(self) -> None:
        await asyncio.sleep(0.3)
        self.warmed = True


@pytest.mark.parametrize("streaming", [False, True])
async def test_ttft_excludes_resolving_and_warming_the_provider(streaming: bool) -> None:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    built: list[SlowToBuild] = []

    def build(name: str, model: str, settings: Settings) -> SlowToBuild:
        built.append(SlowToBuild())
        return built[-1]

    registry.register_factory("slow", build)
    recorder = Recorder()
    engine = Engine(registry, catalog, observers=[recorder])
    request = Request.of("hi", model="slow:m")
    if streaming:
        stream = engine.stream(request)
        async for _ in stream:
            pass
        completion = stream.completion
    else:
        completion = await engine.complete(request)
    assert completion is not None and built[0].warmed
    [record] = recorder.records
    assert record.resolve_s >= 0.6  # construction and warm-up both happened in the call...
    assert completion.ttft_s < 0.3 and completion.duration_s < 0.3  # ...and neither is timed
    assert record.engine_s >= record.resolve_s + completion.duration_s


async def test_resolving_does_not_block_the_event_loop() -> None:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    registry.register_factory("slow", lambda name, model, settings: SlowToBuild())
    engine = Engine(registry, catalog)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await engine.complete(Request.of("hi", model="slow:m"))
    ticker.cancel()
    assert ticks >= 10  # the loop ran on while the provider was built in a thread


async def test_l1_is_planned_once_per_miss_for_the_model_that_is_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = Catalog.load()
    backend = MemoryBackend()
    planner = PromptCachePlanner(catalog)
    cache = CacheManager(
        catalog, exact=ExactCache(backend), planner=planner, warm=WarmPrefixes(backend)
    )
    planned: list[str] = []
    plan = planner.plan

    def counting_plan(request: Request, kind: str, model: str) -> object:
        planned.append(f"{kind}:{model}")
        return plan(request, kind, model)

    monkeypatch.setattr(planner, "plan", counting_plan)
    engine, _, _, _ = world({OPUS: [ProviderUnavailable("overloaded")]}, cache=cache)
    long_system = "You are a careful mathematician. " * 400  # past every cache minimum
    request = HARD.model_copy(update={"system": long_system})
    await engine.complete(request)
    # opus was planned (and failed), then sonnet, the fallback that answered: once each
    assert planned == ["anthropic:claude-opus-5-5", "anthropic:claude-sonnet-5-5"]


async def test_the_context_is_not_part_of_the_route_or_the_answer() -> None:
    engine, router, _, _ = world()
    plain = await engine.complete(HARD)
    other = await engine.complete(HARD.with_context(task_id="x", priority="high", key_id="k"))
    assert plain.model == other.model and router.decisions == 2
    assert CallContext().tenant == "default"
