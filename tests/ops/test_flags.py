"""Feature flags: overrides applied to settings, validated, and re-read once per interval."""

from __future__ import annotations

import logging

import pytest

from helios.config.settings import Settings
from helios.errors import ConfigError, LedgerError
from helios.ledger.events import FlagChanged, FlagValue
from helios.ledger.memory import MemoryLedgerStore
from helios.ops.flags import (
    FLAGS,
    FlagRegistry,
    apply_overrides,
    effective_flags,
    parse_flag_value,
    settings_value,
    validate_flag_value,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyStore(MemoryLedgerStore):
    """A memory store whose override reads fail while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.reads = 0

    async def flag_overrides(self) -> dict[str, FlagValue]:
        self.reads += 1
        if self.down:
            raise LedgerError("ledger.sqlite3: database is locked")
        return await super().flag_overrides()


def test_every_flag_maps_onto_its_setting() -> None:
    settings = Settings()
    changed = apply_overrides(
        settings,
        {
            "async_thesis": False,
            "parallel_prep": True,
            "response_cache": False,
            "thesis_streaming": False,
            "antithesis_streaming": True,
            "synthesis_streaming": False,
            "max_passes": 4,
        },
    )
    assert changed.orchestration.async_thesis.enabled is False
    assert changed.orchestration.parallel_prep.enabled is True
    assert changed.cache.enabled is False
    assert changed.personas["thesis"].streaming is False
    assert changed.personas["antithesis"].streaming is True
    assert changed.personas["synthesis"].streaming is False
    assert changed.orchestration.max_passes == 4
    assert isinstance(changed, Settings)
    assert set(FLAGS) == set(effective_flags(changed, {}))


def test_apply_overrides_leaves_the_original_alone() -> None:
    settings = Settings(personas={"thesis": {"model": "sonnet"}})
    changed = apply_overrides(settings, {"thesis_streaming": False, "async_thesis": False})
    assert settings.orchestration.async_thesis.enabled is True
    assert settings.personas["thesis"].streaming is None
    # The persona's other settings survive the override.
    assert changed.personas["thesis"].model == "sonnet"
    assert changed.orchestration.evidence == settings.orchestration.evidence
    assert apply_overrides(settings, {}) == settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"warp_drive": True}, "unknown flag 'warp_drive'"),
        ({"async_thesis": 1}, "flag async_thesis: Input should be a valid boolean"),
        ({"async_thesis": "false"}, "flag async_thesis"),
        ({"max_passes": True}, "flag max_passes: Input should be a valid integer"),
        ({"max_passes": 0}, "flag max_passes: Input should be greater than or equal to 1"),
        ({"max_passes": 2.5}, "flag max_passes"),
    ],
)
def test_bad_overrides_name_the_flag(overrides: dict[str, FlagValue], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Settings(), overrides)


def test_parse_values_typed_on_a_command_line() -> None:
    assert parse_flag_value("async_thesis", "off") is False
    assert parse_flag_value("async_thesis", "TRUE") is True
    assert parse_flag_value("max_passes", "3") == 3
    with pytest.raises(ConfigError, match="flag async_thesis: expected true or false"):
        parse_flag_value("async_thesis", "maybe")
    with pytest.raises(ConfigError, match="flag max_passes: expected an integer"):
        parse_flag_value("max_passes", "three")
    with pytest.raises(ConfigError, match="unknown flag"):
        parse_flag_value("nope", "1")
    with pytest.raises(ConfigError, match="a value is required"):
        validate_flag_value("async_thesis", None)


def test_settings_value_and_defaults() -> None:
    settings = Settings()
    assert settings_value(settings, "async_thesis") is True
    assert settings_value(settings, "thesis_streaming") is None  # the persona decides
    shown = effective_flags(settings, {"max_passes": 3}, {"thesis_streaming": True})
    assert shown["max_passes"] == 3
    assert shown["thesis_streaming"] is True
    assert "antithesis_streaming" not in shown


async def test_a_change_elsewhere_is_seen_after_one_interval_not_before() -> None:
    store, clock = MemoryLedgerStore(), FakeClock()
    registry = FlagRegistry(store, Settings(), poll_interval_s=10, clock=clock)
    assert (await registry.current()).orchestration.async_thesis.enabled is True

    # Another process (the monitor, `helios flags set`) writes an override.
    await store.set_flag_override("async_thesis", False, actor="other", reason="test")
    clock.now += 9.9
    assert (await registry.current()).orchestration.async_thesis.enabled is True
    clock.now += 0.1
    assert (await registry.current()).orchestration.async_thesis.enabled is False
    assert registry.overrides == {"async_thesis": False}

    await store.set_flag_override("async_thesis", None, actor="other", reason="back")
    clock.now += 10
    assert (await registry.current()).orchestration.async_thesis.enabled is True


async def test_current_reads_the_store_once_per_interval() -> None:
    store, clock = FlakyStore(), FakeClock()
    registry = FlagRegistry(store, Settings(), poll_interval_s=5, clock=clock)
    for _ in range(5):
        await registry.current()
    assert store.reads == 1
    clock.now += 5
    await registry.current()
    assert store.reads == 2


async def test_set_and_unset_write_through_the_store() -> None:
    store = MemoryLedgerStore()
    registry = FlagRegistry(store, Settings(), poll_interval_s=60, clock=FakeClock())
    event = await registry.set("max_passes", 1, actor="ana", reason="cost")
    assert isinstance(event, FlagChanged)
    assert (event.flag, event.old, event.new, event.actor) == ("max_passes", None, 1, "ana")
    # This process sees its own change at once, without waiting for the interval.
    assert (await registry.current()).orchestration.max_passes == 1
    assert registry.effective()["max_passes"] == 1

    await registry.unset("max_passes", actor="ana", reason="done")
    assert (await registry.current()).orchestration.max_passes == 2
    assert await store.flag_overrides() == {}
    changes = [e for e in await store.query() if isinstance(e, FlagChanged)]
    assert [(c.old, c.new, c.reason) for c in changes] == [(None, 1, "cost"), (1, None, "done")]


async def test_set_rejects_a_bad_value_before_writing() -> None:
    store = MemoryLedgerStore()
    registry = FlagRegistry(store, Settings(), poll_interval_s=60)
    with pytest.raises(ConfigError, match="flag async_thesis"):
        await registry.set("async_thesis", 0, actor="ana", reason="x")
    with pytest.raises(ConfigError, match="unknown flag"):
        await registry.unset("nope", actor="ana", reason="x")
    assert await store.count() == 0


async def test_a_store_error_keeps_the_last_known_overrides(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, clock = FlakyStore(), FakeClock()
    await store.set_flag_override("async_thesis", False, actor="t", reason="t")
    registry = FlagRegistry(store, Settings(), poll_interval_s=1, clock=clock)
    assert (await registry.current()).orchestration.async_thesis.enabled is False

    store.down = True
    clock.now += 1
    with caplog.at_level(logging.WARNING, logger="helios.flags"):
        settings = await registry.current()
    assert settings.orchestration.async_thesis.enabled is False
    assert "could not read flag overrides" in caplog.text
    assert "database is locked" in caplog.text


async def test_an_override_this_version_does_not_know_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryLedgerStore()
    await store.set_flag_override("future_flag", True, actor="t", reason="t")
    await store.set_flag_override("max_passes", "many", actor="t", reason="t")
    await store.set_flag_override("parallel_prep", True, actor="t", reason="t")
    registry = FlagRegistry(store, Settings(), poll_interval_s=1)
    with caplog.at_level(logging.WARNING, logger="helios.flags"):
        settings = await registry.current()
    assert settings.orchestration.parallel_prep.enabled is True
    assert settings.orchestration.max_passes == 2
    assert "future_flag" in caplog.text
    assert "max_passes" in caplog.text


async def test_effective_uses_the_defaults_for_unset_settings() -> None:
    registry = FlagRegistry(
        MemoryLedgerStore(),
        Settings(),
        poll_interval_s=1,
        defaults={"thesis_streaming": True, "antithesis_streaming": True},
    )
    await registry.current()
    assert registry.effective()["thesis_streaming"] is True
    await registry.set("thesis_streaming", False, actor="t", reason="t")
    assert registry.effective()["thesis_streaming"] is False
