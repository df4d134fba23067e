from pathlib import Path

import pytest

from helios.catalog import Catalog
from helios.errors import ConfigError, UnknownModel
from helios.messages import Usage


def test_shipped_catalogue_covers_every_family_and_tier() -> None:
    catalog = Catalog.load()
    providers = {entry.provider for entry in catalog}
    assert {"anthropic", "openai", "gemini", "llamacpp"} <= providers
    assert {entry.tier for entry in catalog} == {"strong", "fast", "local"}
    for family in ("opus", "sonnet", "haiku", "gpt", "gemini-pro", "gemini-flash", "local"):
        assert catalog.find(family) is not None, family


def test_prompt_cache_minimums_are_per_model() -> None:
    catalog = Catalog.load()
    minimums = {entry.prompt_cache_min_tokens for entry in catalog if entry.provider == "anthropic"}
    assert {512, 1024, 2048, 4096} <= minimums
    assert catalog.get("local").prompt_cache_min_tokens is None


def test_find_accepts_id_alias_and_spec() -> None:
    catalog = Catalog.load()
    entry = catalog.get("claude-sonnet-5-5")
    assert catalog.find("sonnet") is entry
    assert catalog.find("anthropic:claude-sonnet-5-5") is entry
    assert catalog.lookup("anthropic", "claude-sonnet-5-5") is entry
    assert catalog.lookup("openai", "claude-sonnet-5-5") is None


def test_unknown_model_names_the_model() -> None:
    with pytest.raises(UnknownModel, match="no-such-model"):
        Catalog.load().get("no-such-model")


def test_cost_prices_each_token_class() -> None:
    sonnet = Catalog.load().get("sonnet")
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_tokens=1_000_000,
        cache_write_5m_tokens=1_000_000,
        cache_write_1h_tokens=1_000_000,
    )
    assert sonnet.cost(usage) == pytest.approx(2.00 + 10.00 + 0.10 + 2.50 + 4.00)
    assert Catalog.load().get("local").cost(usage) == 0


def test_user_file_adds_and_replaces_entries(tmp_path: Path) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        """
models:
  - id: claude-sonnet-5-5
    provider: anthropic
    tier: fast
    context_window: 1000000
    prices: {input: 6, output: 22.5, cache_write_5m: 7.5, cache_write_1h: 12, cache_read: 0.6}
    prompt_cache_min_tokens: 1024
    aliases: [sonnet-1m]
  - id: qwen3-32b
    provider: vllm
    tier: fast
    context_window: 32768
    prices: {input: 0, output: 0, cache_write_5m: 0, cache_write_1h: 0, cache_read: 0}
"""
    )
    catalog = Catalog.load([extra])
    assert catalog.get("sonnet-1m").context_window == 1_000_000
    assert catalog.get("claude-sonnet-5-5").prices.input == 6
    assert catalog.get("qwen3-32b").provider == "vllm"


def test_bad_entry_names_file_entry_and_field(tmp_path: Path) -> None:
    extra = tmp_path / "bad.yaml"
    extra.write_text(
        """
models:
  - id: broken
    provider: x
    tier: medium
    context_window: 10
    prices: {input: 1, output: 1, cache_write_5m: 1, cache_write_1h: 1, cache_read: 1}
"""
    )
    with pytest.raises(ConfigError) as info:
        Catalog.load([extra])
    message = str(info.value)
    assert str(extra) in message
    assert "models[0] (broken).tier" in message


def test_missing_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Catalog.load([tmp_path / "absent.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Catalog.load([bad])
