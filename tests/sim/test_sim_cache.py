"""The warm-prefix model on its own (the protocol tests check it over the wire)."""

from __future__ import annotations

from helios.sim.cache import WarmPrefixes
from helios.sim.text import Segment


def chars(tokens: int, fill: str = "a") -> str:
    return fill * (4 * tokens)


def test_single_breakpoint_writes_then_reads_then_expires() -> None:
    cache = WarmPrefixes()
    prompt = [Segment("system", chars(1100), "5m"), Segment("user", chars(10))]

    first = cache.explicit("anthropic", "m", prompt, min_tokens=1024, now=0.0)
    assert (first.cache_write_5m_tokens, first.cache_read_tokens, first.input_tokens) == (
        1100,
        0,
        10,
    )

    second = cache.explicit("anthropic", "m", prompt, min_tokens=1024, now=299.0)
    assert (second.cache_write_tokens, second.cache_read_tokens, second.input_tokens) == (
        0,
        1100,
        10,
    )

    # The read at t=299 refreshed the TTL, so t=500 is still warm; t=900 is not.
    assert (
        cache.explicit("anthropic", "m", prompt, min_tokens=1024, now=500.0).cache_read_tokens
        == 1100
    )
    expired = cache.explicit("anthropic", "m", prompt, min_tokens=1024, now=900.0)
    assert (expired.cache_read_tokens, expired.cache_write_5m_tokens) == (0, 1100)


def test_breakpoint_below_minimum_is_silently_skipped() -> None:
    cache = WarmPrefixes()
    prompt = [Segment("system", chars(1000), "5m"), Segment("user", chars(10))]
    for _ in range(2):
        usage = cache.explicit("anthropic", "m", prompt, min_tokens=1024, now=0.0)
        assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_read_tokens) == (
            1010,
            0,
            0,
        )
    assert len(cache) == 0


def test_one_hour_breakpoint_outlives_five_minutes() -> None:
    cache = WarmPrefixes()
    prompt = [Segment("system", chars(1100), "1h"), Segment("user", chars(10))]
    assert (
        cache.explicit("anthropic", "m", prompt, min_tokens=1024, now=0).cache_write_1h_tokens
        == 1100
    )
    assert (
        cache.explicit("anthropic", "m", prompt, min_tokens=1024, now=3000).cache_read_tokens
        == 1100
    )
    late = cache.explicit("anthropic", "m", prompt, min_tokens=1024, now=3000 + 3601)
    assert late.cache_write_1h_tokens == 1100


def test_multiple_breakpoints_read_the_longest_warm_prefix_and_write_the_rest() -> None:
    cache = WarmPrefixes()
    system = Segment("system", chars(1100), "1h")
    turn = [Segment("user", chars(300), "5m"), Segment("user", chars(5))]
    first = cache.explicit("anthropic", "m", [system, *turn], min_tokens=1024, now=0)
    assert (first.cache_write_1h_tokens, first.cache_write_5m_tokens, first.input_tokens) == (
        1100,
        300,
        5,
    )

    other_turn = [Segment("user", chars(200, "b"), "5m"), Segment("user", chars(5))]
    second = cache.explicit("anthropic", "m", [system, *other_turn], min_tokens=1024, now=10)
    assert (second.cache_read_tokens, second.cache_write_5m_tokens, second.input_tokens) == (
        1100,
        200,
        5,
    )
    assert second.total_input_tokens == 1305


def test_explicit_prefixes_are_per_model_and_per_content() -> None:
    cache = WarmPrefixes()
    prompt = [Segment("system", chars(1100), "5m"), Segment("user", "hi")]
    cache.explicit("anthropic", "m1", prompt, min_tokens=1024, now=0)
    assert cache.explicit("anthropic", "m2", prompt, min_tokens=1024, now=0).cache_read_tokens == 0
    changed = [Segment("system", chars(1100) + "!", "5m"), Segment("user", "hi")]
    assert cache.explicit("anthropic", "m1", changed, min_tokens=1024, now=0).cache_read_tokens == 0


def test_automatic_prefix_counts_in_128_token_steps() -> None:
    cache = WarmPrefixes()
    prompt = [Segment("system", chars(1500)), Segment("user", chars(1))]
    kwargs = {"min_tokens": 1024, "ttl_s": 300.0}
    first = cache.automatic("openai", "m", prompt, now=0, **kwargs)
    assert (first.cache_read_tokens, first.input_tokens) == (0, 1501)
    second = cache.automatic("openai", "m", prompt, now=1, **kwargs)
    assert (second.cache_read_tokens, second.input_tokens) == (1408, 93)  # 1024 + 3 * 128


def test_automatic_prefix_shares_the_common_part_of_different_prompts() -> None:
    cache = WarmPrefixes()
    kwargs = {"min_tokens": 1024, "ttl_s": 300.0}
    cache.automatic(
        "openai", "m", [Segment("system", chars(1200) + chars(800, "b"))], now=0, **kwargs
    )
    other = [Segment("system", chars(1200) + chars(800, "c"))]
    assert cache.automatic("openai", "m", other, now=1, **kwargs).cache_read_tokens == 1152


def test_automatic_prefix_needs_the_minimum_and_expires() -> None:
    cache = WarmPrefixes()
    kwargs = {"min_tokens": 1024, "ttl_s": 300.0}
    short = [Segment("user", chars(1000))]
    cache.automatic("gemini", "m", short, now=0, **kwargs)
    assert cache.automatic("gemini", "m", short, now=1, **kwargs).cache_read_tokens == 0

    long = [Segment("user", chars(1100))]
    cache.automatic("gemini", "m", long, now=0, **kwargs)
    assert cache.automatic("gemini", "m", long, now=200, **kwargs).cache_read_tokens == 1024
    assert cache.automatic("gemini", "m", long, now=600, **kwargs).cache_read_tokens == 0


def test_protocols_do_not_share_prefixes() -> None:
    cache = WarmPrefixes()
    kwargs = {"min_tokens": 1024, "ttl_s": 300.0}
    prompt = [Segment("user", chars(1100))]
    cache.automatic("openai", "m", prompt, now=0, **kwargs)
    assert cache.automatic("gemini", "m", prompt, now=0, **kwargs).cache_read_tokens == 0
