from __future__ import annotations

import pytest

from helios.cache.backends.memory import MemoryBackend
from helios.cache.prompt import (
    L1Savings,
    PlannedRequest,
    PromptCachePlanner,
    WarmPrefixes,
    expected_savings,
    savings,
)
from helios.catalog import Catalog, ModelEntry
from helios.messages import CacheControl, Message, Request, Usage
from helios.providers import anthropic as adapter
from helios.sim import SimServer
from tests.cache.conftest import FakeClock
from tests.providers.remote import remote_settings

SONNET = "claude-sonnet-5-5"  # caches prefixes from 1024 tokens
HAIKU = "claude-haiku-5-5"  # from 4096


def text_of(tokens: int) -> str:
    """A text the default counter prices at exactly ``tokens`` tokens."""
    return "x" * (4 * tokens)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
def planner(catalog: Catalog) -> PromptCachePlanner:
    return PromptCachePlanner(catalog)


def conversation(*turn_tokens: int, system_tokens: int | None = None) -> Request:
    """Alternating user/assistant turns of the given sizes, then a short last question."""
    turns = tuple(
        Message(role="user" if i % 2 == 0 else "assistant", content=f"{i:04d}" + text_of(n - 1))
        for i, n in enumerate(turn_tokens)
    )
    last = Message(role="user", content="And now?")
    system = None if system_tokens is None else text_of(system_tokens)
    return Request(messages=(*turns, last), system=system)


def test_a_long_system_prompt_gets_a_breakpoint(planner: PromptCachePlanner) -> None:
    planned = planner.plan(Request.of("Hi", system=text_of(1500)), "anthropic", SONNET)
    assert planned.request.system_cache == CacheControl(ttl="5m")
    assert planned.breakpoints == 1 and planned.prefix_tokens == 1500
    assert planned.request.messages[-1].cache is None
    assert planned.prefix_hash is not None


def test_a_short_system_prompt_gets_none_and_says_why(planner: PromptCachePlanner) -> None:
    request = Request.of("Hi", system=text_of(1000))
    planned = planner.plan(request, "anthropic", SONNET)
    assert planned.request == request
    assert planned.breakpoints == 0 and planned.prefix_tokens == 0
    assert "below" in planned.reason and "1024" in planned.reason


def test_the_models_own_minimum_applies(planner: PromptCachePlanner) -> None:
    request = Request.of("Hi", system=text_of(2000))
    assert planner.plan(request, "anthropic", SONNET).breakpoints == 1
    planned = planner.plan(request, "anthropic", HAIKU)
    assert planned.request == request and planned.breakpoints == 0
    assert "4096" in planned.reason


def test_breakpoints_only_where_the_prefix_reaches_the_minimum(
    planner: PromptCachePlanner,
) -> None:
    # system 600, then turns: cumulative 900, 1200, 1500
    planned = planner.plan(conversation(300, 300, 300, system_tokens=600), "anthropic", SONNET)
    marked = [m.cache is not None for m in planned.request.messages]
    assert planned.request.system_cache is None
    assert marked == [False, True, True, False]
    assert planned.prefix_tokens == 1500


def test_at_most_four_breakpoints_and_never_on_the_last_message(
    planner: PromptCachePlanner,
) -> None:
    request = conversation(*[2000] * 7, system_tokens=2000)
    planned = planner.plan(request, "anthropic", SONNET)
    result = planned.request
    count = (result.system_cache is not None) + sum(m.cache is not None for m in result.messages)
    assert count == planned.breakpoints == 4
    assert result.system_cache is not None  # the most widely shared prefix first
    assert result.messages[-1].cache is None
    assert result.messages[-2].cache is not None  # then the latest turns
    assert planned.prefix_tokens == 8 * 2000


def test_the_callers_breakpoints_are_kept_and_count(planner: PromptCachePlanner) -> None:
    base = conversation(*[2000] * 5, system_tokens=2000)
    messages = list(base.messages)
    messages[0] = messages[0].model_copy(update={"cache": CacheControl(ttl="1h")})
    messages[1] = messages[1].model_copy(update={"cache": CacheControl(ttl="5m")})
    request = base.model_copy(update={"messages": tuple(messages)})
    planned = planner.plan(request, "anthropic", SONNET)
    result = planned.request
    assert result.messages[0].cache == CacheControl(ttl="1h")
    assert result.messages[1].cache == CacheControl(ttl="5m")
    assert planned.breakpoints == 4
    # Before the caller's 1h breakpoint a new one must be 1h too; after its 5m one, 5m.
    assert result.system_cache == CacheControl(ttl="1h")
    assert result.messages[4].cache == CacheControl(ttl="5m")
    assert result.messages[-1].cache is None


def test_a_one_hour_planner_marks_one_hour(catalog: Catalog) -> None:
    planner = PromptCachePlanner(catalog, ttl="1h")
    planned = planner.plan(Request.of("Hi", system=text_of(1500)), "anthropic", SONNET)
    assert planned.request.system_cache == CacheControl(ttl="1h")


def test_openai_gets_a_cache_key_only_above_1024(planner: PromptCachePlanner) -> None:
    short = Request.of("Hi", system=text_of(1000), metadata={"team": "a"})
    planned = planner.plan(short, "openai", "gpt-5")
    assert planned.request == short and planned.prefix_tokens == 0
    long = Request.of("Hi", system=text_of(1024), metadata={"team": "a"})
    planned = planner.plan(long, "openai", "gpt-5")
    assert planned.request.metadata == {"team": "a", "prompt_cache_key": planned.prefix_hash}
    assert planned.request.system_cache is None and planned.breakpoints == 0
    assert planned.prefix_tokens == 1024


def test_gemini_only_reports_the_prefix(planner: PromptCachePlanner) -> None:
    request = Request.of("Hi", system=text_of(5000))
    planned = planner.plan(request, "gemini", "gemini-2.5-pro")
    assert planned.request == request and planned.prefix_tokens == 5000


@pytest.mark.parametrize("kind", ["llamacpp", "custom"])
def test_other_providers_are_left_alone(planner: PromptCachePlanner, kind: str) -> None:
    request = Request.of("Hi", system=text_of(5000))
    planned = planner.plan(request, kind, "smollm2-135m-instruct")
    assert planned == PlannedRequest(request, 0, 0, None, "no provider prompt cache")


def test_prefix_hash_is_stable_and_follows_the_prefix(planner: PromptCachePlanner) -> None:
    def hash_of(request: Request) -> str | None:
        return planner.plan(request, "anthropic", SONNET).prefix_hash

    first = hash_of(Request.of("Question one", system="Be brief"))
    assert first is not None and len(first) == 64
    assert hash_of(Request.of("Question two", system="Be brief")) == first  # last turn varies
    assert hash_of(Request.of("Question one", system="Be thorough")) != first
    assert planner.plan(Request.of("Q", system="Be brief"), "anthropic", HAIKU).prefix_hash != (
        first
    )


def entry(catalog: Catalog, model: str = SONNET) -> ModelEntry:
    return catalog.get(model)


def test_savings_of_reads(catalog: Catalog) -> None:
    p = entry(catalog).prices
    result = savings(
        Usage(input_tokens=10, cache_read_tokens=3000, output_tokens=5), entry(catalog)
    )
    saved = 3000 * (p.input - p.cache_read) / 1e6
    assert isinstance(result, L1Savings)
    assert (result.read_tokens, result.write_tokens, result.extra_write_usd) == (3000, 0, 0)
    assert result.saved_usd == pytest.approx(saved) and saved > 0
    assert result.net_usd == pytest.approx(saved)


def test_savings_of_writes(catalog: Catalog) -> None:
    p = entry(catalog).prices
    usage = Usage(input_tokens=10, cache_write_5m_tokens=2000, cache_write_1h_tokens=500)
    result = savings(usage, entry(catalog))
    extra = (2000 * (p.cache_write_5m - p.input) + 500 * (p.cache_write_1h - p.input)) / 1e6
    assert result.read_tokens == 0 and result.write_tokens == 2500
    assert result.saved_usd == 0
    assert result.extra_write_usd == pytest.approx(extra) and extra > 0
    assert result.net_usd == pytest.approx(-extra)


def test_expected_savings(planner: PromptCachePlanner, catalog: Catalog) -> None:
    p = entry(catalog).prices
    planned = planner.plan(Request.of("Hi", system=text_of(1500)), "anthropic", SONNET)
    assert expected_savings(planned, entry(catalog), warm=False) == 0
    assert expected_savings(planned, entry(catalog), warm=True) == pytest.approx(
        1500 * (p.input - p.cache_read) / 1e6
    )


async def test_warm_prefixes_expire_and_refresh_on_reads() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    warm = WarmPrefixes(backend)
    assert not await warm.is_warm("abc")
    await warm.mark("abc", 300)
    assert [key async for key in backend.scan("l1:")] == ["l1:abc"]
    clock.advance(299)
    assert await warm.is_warm("abc")  # refreshed: another 300 s from now
    clock.advance(299)
    assert await warm.is_warm("abc")
    clock.advance(301)
    assert not await warm.is_warm("abc")


async def test_record_marks_only_when_usage_shows_caching(planner: PromptCachePlanner) -> None:
    clock = FakeClock()
    warm = WarmPrefixes(MemoryBackend(clock=clock))
    planned = planner.plan(Request.of("Hi", system=text_of(1500)), "anthropic", SONNET)
    assert planned.prefix_hash is not None
    assert not await warm.record(planned, Usage(input_tokens=1600))
    assert not await warm.is_warm(planned.prefix_hash)
    assert await warm.record(planned, Usage(cache_write_1h_tokens=1500), ttl="1h")
    clock.advance(3000)
    assert await warm.is_warm(planned.prefix_hash)


async def test_end_to_end_through_the_simulator(
    sim: SimServer, planner: PromptCachePlanner, catalog: Catalog
) -> None:
    system = " ".join(f"Rule {n}: answer plainly and cite the source." for n in range(133))
    assert 5900 <= len(system) <= 6300
    planned = planner.plan(Request.of("What now?", system=system), "anthropic", SONNET)
    assert planned.breakpoints == 1 and planned.prefix_hash is not None
    warm = WarmPrefixes(MemoryBackend())
    provider = adapter.create("anthropic", SONNET, remote_settings("anthropic", sim.base_url))
    try:
        assert not await warm.is_warm(planned.prefix_hash)
        first = await provider.complete(planned.request)
        await warm.record(planned, first.usage)
        assert await warm.is_warm(planned.prefix_hash)
        second = await provider.complete(planned.request)
    finally:
        await provider.aclose()
    tokens = -(-len(system) // 4)
    assert first.usage.cache_write_5m_tokens == tokens == planned.prefix_tokens
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == tokens and second.usage.cache_write_tokens == 0

    p = entry(catalog).prices
    expected = tokens * (p.input - p.cache_read) / 1e6
    result = savings(second.usage, entry(catalog))
    assert result.read_tokens == tokens and result.extra_write_usd == 0
    assert result.saved_usd == pytest.approx(expected) and result.net_usd == pytest.approx(expected)
    assert expected_savings(planned, entry(catalog), warm=True) == pytest.approx(expected)
    write = savings(first.usage, entry(catalog))
    assert write.extra_write_usd == pytest.approx(tokens * (p.cache_write_5m - p.input) / 1e6)
