"""Feature flags: named switches over settings, overridden at run time through the ledger.

A flag is a name for one setting (``async_thesis`` is ``orchestration.async_thesis.enabled``).
Its value comes from the settings unless the ledger store holds an override, which any
process (``helios flags set``, the health monitor) may write. :class:`FlagRegistry` re-reads
the overrides at most once per poll interval, so a change made elsewhere takes effect within
one interval, and hands out :class:`~helios.config.settings.Settings` with the overrides applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from helios.config.settings import Settings
from helios.errors import ConfigError, HeliosError
from helios.ledger.events import FlagChanged, FlagValue
from helios.ledger.store import LedgerStore

logger = logging.getLogger("helios.flags")

_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})


@dataclass(frozen=True, slots=True)
class FlagSpec:
    name: str
    path: tuple[str, ...]
    """Where the flag lives in :class:`Settings`; a key of a dict section is one part."""
    description: str

    @property
    def setting(self) -> str:
        return ".".join(self.path)


FLAGS: Mapping[str, FlagSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            FlagSpec(
                "async_thesis",
                ("orchestration", "async_thesis", "enabled"),
                "run the thesis while evidence is gathered",
            ),
            FlagSpec(
                "parallel_prep",
                ("orchestration", "parallel_prep", "enabled"),
                "prepare the antithesis while the thesis streams",
            ),
            FlagSpec(
                "single_call",
                ("orchestration", "single_call", "enabled"),
                "thesis, antithesis and synthesis in one model call",
            ),
            FlagSpec("response_cache", ("cache", "enabled"), "the exact-match response cache"),
            FlagSpec("thesis_streaming", ("personas", "thesis", "streaming"), "stream the thesis"),
            FlagSpec(
                "antithesis_streaming",
                ("personas", "antithesis", "streaming"),
                "stream the antithesis",
            ),
            FlagSpec(
                "synthesis_streaming",
                ("personas", "synthesis", "streaming"),
                "stream the synthesis",
            ),
            FlagSpec("max_passes", ("orchestration", "max_passes"), "synthesis passes at most"),
        )
    }
)


def flag_spec(flag: str) -> FlagSpec:
    spec = FLAGS.get(flag)
    if spec is None:
        raise ConfigError(f"unknown flag {flag!r}; known flags: {', '.join(FLAGS)}")
    return spec


def validate_flag_value(flag: str, value: object) -> FlagValue:
    """``value`` if it suits ``flag`` (type and range, strictly: ``1`` is not ``True``)."""
    spec = flag_spec(flag)
    if value is None:
        raise ConfigError(f"flag {flag}: a value is required (unset the flag to remove it)")
    try:
        checked = _adapter(spec).validate_python(value, strict=True)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise ConfigError(f"flag {flag}: {message} (got {value!r})") from None
    if not isinstance(checked, bool | int | float | str):
        raise ConfigError(f"flag {flag}: unsupported value {value!r}")
    return checked


def parse_flag_value(flag: str, raw: str) -> FlagValue:
    """A flag value typed on a command line: ``on``/``off``/``true``/``false``, ``3``."""
    spec = flag_spec(flag)
    kind = _leaf_type(spec)
    text = raw.strip().lower()
    value: object = raw
    if kind is bool:
        if text in _TRUE:
            value = True
        elif text in _FALSE:
            value = False
        else:
            raise ConfigError(f"flag {flag}: expected true or false, got {raw!r}")
    elif kind is int:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"flag {flag}: expected an integer, got {raw!r}") from None
    return validate_flag_value(flag, value)


def settings_value(settings: Settings, flag: str) -> FlagValue | None:
    """The flag's value in ``settings``; ``None`` where the setting is left to a default
    defined elsewhere (a persona's shipped ``streaming``)."""
    node: Any = settings
    for part in flag_spec(flag).path:
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return None
    if not isinstance(node, bool | int | float | str):
        return None
    return node


def apply_overrides(settings: Settings, overrides: Mapping[str, FlagValue]) -> Settings:
    """New settings with ``overrides`` applied; ``settings`` is left as it was.

    Raises :class:`ConfigError` naming the flag for an unknown flag or a value of the wrong
    type or out of range.
    """
    result: BaseModel = settings
    for flag, value in overrides.items():
        checked = validate_flag_value(flag, value)
        result = _replace(result, flag_spec(flag).path, checked)
    assert isinstance(result, Settings)
    return result


def effective_flags(
    settings: Settings,
    overrides: Mapping[str, FlagValue],
    defaults: Mapping[str, FlagValue] | None = None,
) -> dict[str, FlagValue]:
    """Every flag's value in force: the override, else the setting, else ``defaults``."""
    values: dict[str, FlagValue] = {}
    for flag in FLAGS:
        value = overrides.get(flag)
        if value is None:
            value = settings_value(settings, flag)
        if value is None and defaults is not None:
            value = defaults.get(flag)
        if value is not None:
            values[flag] = value
    return values


class FlagRegistry:
    """The settings in force for one process: base settings plus the store's overrides.

    ``current()`` is cheap: it reads the store only when its copy of the overrides is older
    than ``poll_interval_s``. A store that fails leaves the last known overrides in force
    (a warning is logged) so a ledger outage never fails a task.
    """

    def __init__(
        self,
        store: LedgerStore,
        settings: Settings,
        *,
        poll_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        defaults: Mapping[str, FlagValue] | None = None,
    ) -> None:
        self.store = store
        self.base = settings
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._defaults = dict(defaults or {})
        self._overrides: dict[str, FlagValue] = {}
        self._settings = settings
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def overrides(self) -> dict[str, FlagValue]:
        """The overrides as last read (valid ones only)."""
        return dict(self._overrides)

    async def current(self) -> Settings:
        """The settings with the overrides in force, re-read when older than one interval."""
        if self._stale():
            async with self._lock:
                if self._stale():
                    await self._poll()
        return self._settings

    async def refresh(self) -> Settings:
        """Re-read the overrides now, whatever their age."""
        async with self._lock:
            await self._poll()
        return self._settings

    async def set(self, flag: str, value: FlagValue, *, actor: str, reason: str) -> FlagChanged:
        """Override ``flag`` for every process sharing the store; recorded as flag_changed."""
        checked = validate_flag_value(flag, value)
        event = await self.store.set_flag_override(flag, checked, actor=actor, reason=reason)
        await self.refresh()
        return event

    async def unset(self, flag: str, *, actor: str, reason: str) -> FlagChanged:
        """Remove ``flag``'s override: the settings' value is in force again."""
        flag_spec(flag)
        event = await self.store.set_flag_override(flag, None, actor=actor, reason=reason)
        await self.refresh()
        return event

    def effective(self) -> dict[str, FlagValue]:
        """Every flag's value in force, for display (as of the last read)."""
        return effective_flags(self.base, self._overrides, self._defaults)

    def _stale(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self.poll_interval_s

    async def _poll(self) -> None:
        self._read_at = self._clock()
        try:
            stored = await self.store.flag_overrides()
        except (HeliosError, OSError) as exc:
            logger.warning("could not read flag overrides, keeping the last known: %s", exc)
            return
        valid = _valid_overrides(stored)
        if valid != self._overrides:
            self._overrides = valid
            self._settings = apply_overrides(self.base, valid)


def _valid_overrides(stored: Mapping[str, FlagValue]) -> dict[str, FlagValue]:
    # An override this version does not understand (a newer release's flag) is skipped,
    # not fatal: the other flags still apply.
    valid: dict[str, FlagValue] = {}
    for flag, value in stored.items():
        try:
            valid[flag] = validate_flag_value(flag, value)
        except ConfigError as exc:
            logger.warning("ignoring flag override: %s", exc)
    return valid


def _replace(node: BaseModel, path: tuple[str, ...], value: FlagValue) -> BaseModel:
    head, rest = path[0], path[1:]
    if not rest:
        return node.model_copy(update={head: value})
    child = getattr(node, head)
    if isinstance(child, dict):
        key, rest = rest[0], rest[1:]
        entry_type = get_args(type(node).model_fields[head].annotation)[1]
        entry = child.get(key) or entry_type()
        new_child: object = {**child, key: _replace(entry, rest, value)}
    else:
        new_child = _replace(child, rest, value)
    return node.model_copy(update={head: new_child})


def _leaf_field(spec: FlagSpec) -> tuple[Any, list[Any]]:
    model: type[BaseModel] = Settings
    parts = list(spec.path)
    while True:
        field = model.model_fields[parts.pop(0)]
        annotation = field.annotation
        if not parts:
            return annotation, list(field.metadata)
        if get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
            parts.pop(0)  # the dict key (a persona's name)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            raise TypeError(f"flag {spec.name}: {spec.setting} is not a settings section")
        model = annotation


def _adapter(spec: FlagSpec) -> TypeAdapter[Any]:
    annotation, metadata = _leaf_field(spec)
    return TypeAdapter(Annotated[annotation, *metadata] if metadata else annotation)


def _leaf_type(spec: FlagSpec) -> type:
    annotation, _ = _leaf_field(spec)
    kinds = [arg for arg in get_args(annotation) if arg is not type(None)] or [annotation]
    kind = kinds[0]
    return kind if isinstance(kind, type) else str
