from helios.analysis.cache_usage import cache_usage_by_persona
from helios.ledger.events import CacheLookup, Event, PersonaLLMRun


def run(persona: str | None, layer: str | None, saved: float = 0.0) -> PersonaLLMRun:
    return PersonaLLMRun(
        task_id="t", persona=persona or "-", stage="s", provider="p", model="m",
        streaming=False, ttft_s=0.1, duration_s=0.1, perceived_improvement=0.0,
        input_tokens=1, output_tokens=1, cost_usd=0.0 if layer else 0.01,
        cost_saved_usd=saved if layer else None, time_saved_s=2 * saved if layer else None,
        cache_layer=layer,
    )  # fmt: skip


def test_hits_misses_and_savings_are_summed_per_persona() -> None:
    events: list[Event] = [
        CacheLookup(task_id="t", persona="thesis", layer="L2", hit=False),
        CacheLookup(task_id="t", persona="thesis", layer="L3", hit=False),
        run("thesis", None),
        CacheLookup(task_id="t", persona="thesis", layer="L2", hit=True),
        run("thesis", "L2", saved=0.5),
        CacheLookup(task_id="t", persona="thesis", layer="L2", hit=False),
        CacheLookup(task_id="t", persona="thesis", layer="L3", hit=True),
        run("thesis", "L3", saved=0.25),
        run("-", None),
    ]
    usage = cache_usage_by_persona(events)
    assert list(usage) == ["-", "thesis"]
    thesis = usage["thesis"].to_dict()
    assert (thesis["calls"], thesis["hits"], thesis["misses"]) == (3, 2, 1)
    assert thesis["hits_by_layer"] == {"L2": 1, "L3": 1}
    assert thesis["lookups_by_layer"] == {"L2": 3, "L3": 2}
    assert thesis["cost_saved_usd"] == 0.75 and thesis["time_saved_s"] == 1.5
    assert usage["-"].hit_rate == 0.0


def test_no_events_no_personas() -> None:
    assert cache_usage_by_persona([]) == {}
