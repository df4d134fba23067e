"""The waterfall manager over real layers: memory L2, usearch L3 with the local embedder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helios.cache.backends.memory import MemoryBackend
from helios.cache.backends.usearch import UsearchIndex
from helios.cache.exact import CachedReply, ExactCache
from helios.cache.manager import CacheManager
from helios.cache.prompt import PromptCachePlanner, WarmPrefixes
from helios.cache.semantic import SemanticCache
from helios.cache.verifier import HitVerifier
from helios.catalog import Catalog
from helios.config.cache import SemanticCacheSettings
from helios.embeddings.onnx import OnnxMiniLM
from helios.messages import CacheDirectives, CallContext, Message, Request, SamplingParams, Usage

SONNET = ("anthropic", "claude-sonnet-5-5")
QUESTION = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"


@pytest.fixture(scope="module")
def embedder() -> OnnxMiniLM:
    return OnnxMiniLM()


@pytest.fixture
async def manager(tmp_path: Path, embedder: OnnxMiniLM) -> AsyncIterator[CacheManager]:
    catalog = Catalog.load()
    backend = MemoryBackend()
    semantic = SemanticCache(
        UsearchIndex(tmp_path / "cache.sqlite3", embedder.dim),
        embedder,
        SemanticCacheSettings(),
        verifier=HitVerifier(),
    )
    planner = PromptCachePlanner(catalog)
    cache = CacheManager(
        catalog,
        exact=ExactCache(backend),
        semantic=semantic,
        planner=planner,
        warm=WarmPrefixes(backend),
    )
    yield cache
    await cache.aclose()


def reply(text: str = "Open Settings, then Security, then Reset.") -> CachedReply:
    return CachedReply(
        text=text,
        chunks=(text[:5], text[5:]),
        usage=Usage(input_tokens=100, output_tokens=40),
        model=SONNET[1],
        provider=SONNET[0],
        created_at=0.0,
    )


def ask(text: str, **fields: object) -> Request:
    return Request.of(text, model="sonnet", **fields)


async def remember(manager: CacheManager, request: Request) -> None:
    stored = await manager.store(request, *SONNET, reply())
    assert stored == ("L2", "L3")


async def test_exact_repeat_is_answered_by_l2_without_asking_l3(manager: CacheManager) -> None:
    await remember(manager, ask(QUESTION))
    found = await manager.lookup(ask(QUESTION), *SONNET)
    assert found.hit and found.layer == "L2" and found.confidence == 1.0
    assert found.l2.hit and not found.l3.checked and found.l3.reason == "L2 answered"
    assert found.reply is not None and found.reply.chunks == reply().chunks


async def test_a_paraphrase_is_answered_by_l3(manager: CacheManager) -> None:
    await remember(manager, ask(QUESTION))
    found = await manager.lookup(ask(PARAPHRASE), *SONNET)
    assert found.layer == "L3" and found.l2.checked and not found.l2.hit
    assert found.l3.similarity is not None and found.l3.similarity >= 0.85
    assert found.confidence is not None and 0 < found.confidence <= 1
    expected = Catalog.load().lookup(*SONNET)
    assert expected is not None
    assert found.tokens_saved == 140
    assert found.cost_saved_usd == pytest.approx(expected.cost(reply().usage))
    metrics = manager.snapshot()
    assert metrics["total_lookups"] == 1 and metrics["total_hits"] == 1
    assert metrics["l3_hit_rate"] == 1.0 and metrics["l2_hit_rate"] == 0.0
    assert metrics["l3_average_similarity"] == pytest.approx(found.l3.similarity)


async def test_a_negated_question_is_not_served(manager: CacheManager) -> None:
    await remember(manager, ask("How do I enable two-factor authentication?"))
    found = await manager.lookup(ask("How do I disable two-factor authentication?"), *SONNET)
    assert not found.hit
    assert found.l3.checked
    # the reason names the nearest candidate's difference, not only that one was refused
    assert "rejected by the verifier" in found.l3.reason
    assert "opposite disable vs enable" in found.l3.reason


async def test_a_changed_number_is_refused_and_the_reason_names_it(manager: CacheManager) -> None:
    await remember(manager, ask("Is the pharmacy open at 8am?"))
    found = await manager.lookup(ask("Is the pharmacy open at 6am?"), *SONNET)
    assert not found.hit
    assert found.l3.reason.startswith("1 candidate(s) above 0.85 rejected by the verifier")
    assert "number 6am vs 8am" in found.l3.reason


@pytest.mark.parametrize(
    "other",
    [
        ask(PARAPHRASE, system="You are a pirate."),
        ask(PARAPHRASE, context=CallContext(tenant="acme")),
        ask(PARAPHRASE, task_type="support"),
        Request(
            messages=(
                Message(role="user", content="I use the mobile app."),
                Message(role="assistant", content="Noted."),
                Message(role="user", content=PARAPHRASE),
            ),
            model="sonnet",
        ),
    ],
    ids=["system", "tenant", "task_type", "earlier-turns"],
)
async def test_l3_matches_only_within_the_same_context(
    manager: CacheManager, other: Request
) -> None:
    await remember(manager, ask(QUESTION))
    found = await manager.lookup(other, *SONNET)
    assert not found.hit and found.l3.similarity is None  # nothing in that context at all


async def test_another_tier_is_another_context(manager: CacheManager) -> None:
    await remember(manager, ask(QUESTION))
    found = await manager.lookup(ask(PARAPHRASE), "anthropic", "claude-opus-5-5")
    assert not found.hit


async def test_hot_sampling_skips_l3(manager: CacheManager) -> None:
    await remember(manager, ask(QUESTION))
    hot = ask(PARAPHRASE, params=SamplingParams(temperature=0.9))
    assert manager.layers_for(hot) == ("L2",)
    found = await manager.lookup(hot, *SONNET)
    assert not found.hit and not found.l3.checked
    assert "temperature 0.9" in found.l3.reason


async def test_per_request_threshold_and_layer_switches(manager: CacheManager) -> None:
    await remember(manager, ask(QUESTION))
    strict = await manager.lookup(ask(PARAPHRASE), *SONNET, similarity_threshold=0.999)
    assert not strict.hit
    no_l2 = await manager.lookup(ask(QUESTION), *SONNET, use_l2=False)
    assert no_l2.layer == "L3" and no_l2.l2.reason == "not asked"
    assert no_l2.l3.similarity == pytest.approx(1.0, abs=1e-3)
    nothing = await manager.lookup(ask(QUESTION), *SONNET, use_l2=False, use_l3=False)
    assert not nothing.hit


async def test_invalidate_counts_per_layer(manager: CacheManager) -> None:
    await remember(manager, ask(QUESTION, context=CallContext(tenant="acme")))
    await remember(manager, ask("What is the refund policy?", context=CallContext(tenant="acme")))
    await remember(manager, ask(QUESTION, context=CallContext(tenant="globex")))
    assert await manager.entries() == {"L1": 0, "L2": 3, "L3": 3}
    assert await manager.invalidate(tenant="acme") == {"L2": 2, "L3": 2}
    assert await manager.invalidate(layer="L3") == {"L3": 1}
    assert await manager.entries() == {"L1": 0, "L2": 1, "L3": 0}
    found = await manager.lookup(ask(PARAPHRASE, context=CallContext(tenant="globex")), *SONNET)
    assert not found.hit


async def test_l1_store_marks_a_long_prefix_warm_and_lookup_reports_it(
    manager: CacheManager,
) -> None:
    system = "Answer as the support desk of a bank. " * 150  # about 1,400 tokens
    request = ask(QUESTION, system=system)
    assert await manager.store(request, *SONNET, reply(), layers=("L1",)) == ("L1",)
    later = await manager.lookup(ask("Where is my nearest branch?", system=system), *SONNET)
    assert later.l1.applicable and later.l1.warm
    assert later.l1.prefix_tokens > 1024 and later.l1.expected_savings_usd > 0
    short = await manager.lookup(ask("Hi", system="Be brief."), *SONNET)
    assert not short.l1.applicable and "below" in short.l1.reason
    unkept = await manager.store(ask("Hi", system="Be brief."), *SONNET, reply(), layers=("L1",))
    assert unkept == ()


async def test_health_is_ok_when_every_store_answers(manager: CacheManager) -> None:
    health = await manager.health()
    assert health.status == "ok"
    assert {layer: h.status for layer, h in health.layers.items()} == {
        "L1": "ok",
        "L2": "ok",
        "L3": "ok",
    }


async def test_templated_persona_prompts_skip_l3(manager: CacheManager) -> None:
    template = "Goal: {goal}\n\nArgue for the best answer to the goal, then your reasons."
    startup = template.format(goal="Should a five-person startup adopt microservices?")
    bank = template.format(goal="Should a five-person bank adopt microservices?")
    await manager.store(ask(startup, task_type="dialectic"), *SONNET, reply())
    found = await manager.lookup(ask(bank, task_type="dialectic"), *SONNET)
    assert not found.hit and not found.l3.checked
    assert "skip_task_types" in found.l3.reason
    assert manager.layers_for(ask(bank, task_type="dialectic")) == ("L2",)


async def test_an_l3_hit_is_kept_as_an_exact_alias(manager: CacheManager) -> None:
    await remember(manager, ask(QUESTION))
    first = await manager.lookup(ask(PARAPHRASE), *SONNET)
    again = await manager.lookup(ask(PARAPHRASE), *SONNET)
    assert first.layer == "L3" and again.layer == "L2"
    assert again.reply is not None and again.reply.chunks == reply().chunks
    assert not again.l3.checked


async def test_no_alias_when_the_caller_forbids_storing_or_the_setting_is_off(
    manager: CacheManager,
) -> None:
    await remember(manager, ask(QUESTION))
    no_store = ask(PARAPHRASE, cache=CacheDirectives(store=False))
    assert (await manager.lookup(no_store, *SONNET)).layer == "L3"
    assert (await manager.lookup(no_store, *SONNET)).layer == "L3"
    assert manager.semantic is not None
    manager.semantic.settings = SemanticCacheSettings(alias_hits=False)
    assert (await manager.lookup(ask(PARAPHRASE), *SONNET)).layer == "L3"
    assert (await manager.lookup(ask(PARAPHRASE), *SONNET)).layer == "L3"
