"""The vector index contract, run against every index kind (``vector_conftest.VECTOR_KINDS``)."""

from __future__ import annotations

import asyncio
import math

import numpy
import pytest

from helios.cache.backends.vector import IndexStats, SemanticEntry, VectorIndex
from tests.cache import vector_conftest
from tests.cache.conftest import FakeClock
from tests.cache.vector_conftest import DIM, MakeIndex, entry, unit

# the vector fixtures, made visible to this module's tests
make_index = vector_conftest.make_index
pgvector_url = vector_conftest.pgvector_url


def blend(cosine: float) -> numpy.ndarray:
    """A unit vector whose cosine with ``axis(0)`` is exactly ``cosine``."""
    vector = numpy.zeros(DIM, dtype=numpy.float32)
    vector[0], vector[1] = cosine, math.sqrt(1.0 - cosine * cosine)
    return vector


async def test_search_returns_nearest_first_with_cosine_scores(make_index: MakeIndex) -> None:
    index = make_index()
    for entry_id, cosine in [("far", 0.3), ("same", 1.0), ("opposite", -1.0), ("near", 0.8)]:
        await index.add(entry(entry_id), blend(cosine))
    matches = await index.search("ctx", blend(1.0), k=3)
    assert [match.entry.entry_id for match in matches] == ["same", "near", "far"]
    assert [match.score for match in matches] == pytest.approx([1.0, 0.8, 0.3], abs=1e-5)
    everything = await index.search("ctx", blend(1.0), k=10)
    assert [match.entry.entry_id for match in everything] == ["same", "near", "far", "opposite"]
    assert everything[-1].score == pytest.approx(-1.0, abs=1e-5)
    assert everything[0].entry == entry("same")


async def test_k_bounds_the_number_of_matches(make_index: MakeIndex) -> None:
    index = make_index()
    for number in range(12):
        await index.add(entry(f"e{number}"), unit(number))
    assert len(await index.search("ctx", unit(3), k=5)) == 5
    best = await index.search("ctx", unit(3), k=1)
    assert [match.entry.entry_id for match in best] == ["e3"]
    with pytest.raises(ValueError):
        await index.search("ctx", unit(3), k=0)


async def test_empty_or_unknown_context_finds_nothing(make_index: MakeIndex) -> None:
    index = make_index()
    assert await index.search("ctx", unit(1), k=5) == []
    await index.add(entry("a", context="one"), unit(1))
    assert await index.search("two", unit(1), k=5) == []


async def test_a_search_never_crosses_into_another_context(make_index: MakeIndex) -> None:
    index = make_index()
    same_vector = unit(7)
    await index.add(entry("in-a", context="conversation-a"), same_vector)
    await index.add(entry("in-b", context="conversation-b"), same_vector)
    for number in range(20):
        await index.add(entry(f"a{number}", context="conversation-a"), unit(100 + number))
    in_b = await index.search("conversation-b", same_vector, k=5)
    assert [match.entry.entry_id for match in in_b] == ["in-b"]
    assert in_b[0].entry.context == "conversation-b"
    in_a = await index.search("conversation-a", same_vector, k=30)
    assert len(in_a) == 21
    assert {match.entry.context for match in in_a} == {"conversation-a"}
    assert in_a[0].entry.entry_id == "in-a"


async def test_adding_an_existing_entry_id_replaces_entry_and_vector(
    make_index: MakeIndex,
) -> None:
    index = make_index()
    old_vector, new_vector = blend(1.0), blend(0.5)
    await index.add(entry("q", reply=b"old"), old_vector)
    await index.add(entry("other"), blend(-0.5))
    await index.add(entry("q", reply=b"new"), new_vector)
    matches = await index.search("ctx", old_vector, k=5)
    assert [(match.entry.entry_id, match.entry.reply) for match in matches] == [
        ("q", b"new"),
        ("other", b"reply other"),
    ]
    assert matches[0].score == pytest.approx(0.5, abs=1e-5)  # the old vector is gone
    assert await index.get("q") == entry("q", reply=b"new")
    assert await index.stats() == IndexStats(entries=2, contexts=1)
    # replaced into another context: the old context no longer holds it
    await index.add(entry("q", context="elsewhere"), new_vector)
    assert [match.entry.entry_id for match in await index.search("ctx", new_vector, k=5)] == [
        "other"
    ]
    assert [m.entry.entry_id for m in await index.search("elsewhere", new_vector, k=5)] == ["q"]


async def test_expired_entries_are_never_returned(make_index: MakeIndex, clock: FakeClock) -> None:
    index = make_index()
    await index.add(entry("brief", expires_at=clock.now + 10), unit(1))
    await index.add(entry("kept"), unit(2))
    clock.advance(9.5)
    assert [m.entry.entry_id for m in await index.search("ctx", unit(1), k=1)] == ["brief"]
    assert await index.get("brief") is not None
    clock.advance(0.5)
    assert [m.entry.entry_id for m in await index.search("ctx", unit(1), k=5)] == ["kept"]
    assert await index.get("brief") is None
    assert await index.stats() == IndexStats(entries=1, contexts=1)
    assert await index.delete("brief") is False  # expired counts as absent
    await index.add(entry("later"), unit(3))  # adding purges what expired
    clock.advance(10**9)
    assert await index.get("kept") == entry("kept")
    assert await index.stats() == IndexStats(entries=2, contexts=1)


async def test_delete_removes_one_entry(make_index: MakeIndex) -> None:
    index = make_index()
    await index.add(entry("a"), unit(1))
    await index.add(entry("b"), unit(2))
    assert await index.delete("a") is True
    assert await index.delete("a") is False
    assert await index.delete("never") is False
    assert await index.get("a") is None
    assert [m.entry.entry_id for m in await index.search("ctx", unit(1), k=5)] == ["b"]


async def add_grid(make_index: MakeIndex) -> VectorIndex:
    """Two tenants by two task types, in a context each: 2 + 1 + 1 + 2 entries."""
    index = make_index()
    layout = [
        ("acme", "chat", 2),
        ("acme", "code", 1),
        ("globex", "chat", 1),
        ("globex", "code", 2),
    ]
    seed = 0
    for tenant, task_type, count in layout:
        for number in range(count):
            seed += 1
            await index.add(
                entry(
                    f"{tenant}-{task_type}-{number}",
                    context=f"{tenant}/{task_type}",
                    tenant=tenant,
                    task_type=task_type,
                ),
                unit(seed),
            )
    return index


@pytest.mark.parametrize(
    ("tenant", "task_type", "removed", "left"),
    [
        ("acme", None, 3, {"globex/chat", "globex/code"}),
        (None, "code", 3, {"acme/chat", "globex/chat"}),
        ("globex", "code", 2, {"acme/chat", "acme/code", "globex/chat"}),
        (None, None, 6, set()),
    ],
)
async def test_invalidate_by_tenant_task_type_both_or_all(
    make_index: MakeIndex,
    tenant: str | None,
    task_type: str | None,
    removed: int,
    left: set[str],
) -> None:
    index = await add_grid(make_index)
    assert await index.invalidate(tenant=tenant, task_type=task_type) == removed
    assert await index.invalidate(tenant=tenant, task_type=task_type) == 0
    remaining = set()
    for context in ["acme/chat", "acme/code", "globex/chat", "globex/code"]:
        if await index.search(context, unit(1), k=5):
            remaining.add(context)
    assert remaining == left
    assert await index.stats() == IndexStats(entries=6 - removed, contexts=len(left))


async def test_stats_count_live_entries_and_their_contexts(
    make_index: MakeIndex, clock: FakeClock
) -> None:
    index = make_index()
    assert await index.stats() == IndexStats(entries=0, contexts=0)
    await index.add(entry("a", context="one"), unit(1))
    await index.add(entry("b", context="one"), unit(2))
    await index.add(entry("c", context="two"), unit(3))
    await index.add(entry("d", context="three", expires_at=clock.now + 1), unit(4))
    assert await index.stats() == IndexStats(entries=4, contexts=3)
    clock.advance(1)
    assert await index.stats() == IndexStats(entries=3, contexts=2)


async def test_a_vector_of_another_size_is_a_value_error(make_index: MakeIndex) -> None:
    index = make_index()
    with pytest.raises(ValueError, match="shape"):
        await index.add(entry("a"), unit(1, DIM + 1))
    with pytest.raises(ValueError, match="shape"):
        await index.search("ctx", unit(1, DIM - 1), k=1)
    with pytest.raises(ValueError, match="shape"):
        await index.search("ctx", numpy.stack([unit(1), unit(2)]), k=1)
    assert await index.stats() == IndexStats(entries=0, contexts=0)


async def test_ping_succeeds_on_a_working_index(make_index: MakeIndex) -> None:
    await make_index().ping()


async def test_entries_round_trip_exactly(make_index: MakeIndex) -> None:
    index = make_index()
    odd = SemanticEntry(
        entry_id="odd",
        context="ctx",
        tenant="t",
        task_type="chat",
        question="ça va ? 🙂",
        reply=b"\x00\xff binary",
        created_at=1234.5678,
        expires_at=None,
    )
    await index.add(odd, unit(1))
    assert await index.get("odd") == odd
    [match] = await index.search("ctx", unit(1), k=1)
    assert match.entry == odd


async def test_concurrent_adds_on_one_loop_are_all_kept(make_index: MakeIndex) -> None:
    index = make_index()
    await asyncio.gather(
        *(index.add(entry(f"e{n}", context=f"c{n % 4}"), unit(n)) for n in range(40))
    )
    assert await index.stats() == IndexStats(entries=40, contexts=4)
    results = await asyncio.gather(*(index.search(f"c{n % 4}", unit(n), k=1) for n in range(40)))
    assert [matches[0].entry.entry_id for matches in results] == [f"e{n}" for n in range(40)]
