"""The model catalogue: provider, tier, context, prices and prompt-cache minimum per model.

The shipped list lives in ``helios/data/models.yaml``; users add or replace entries with
their own YAML files of the same shape (an entry with an existing id replaces it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helios.errors import ConfigError, UnknownModel
from helios.messages import Usage

Tier = Literal["strong", "fast", "local"]
_PER_TOKEN = 1e-6  # prices are quoted per million tokens


class Prices(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float = Field(ge=0)
    cache_write_1h: float = Field(ge=0)
    cache_read: float = Field(ge=0)


class ModelEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    tier: Tier
    context_window: int = Field(gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    prices: Prices
    prompt_cache_min_tokens: int | None = Field(default=None, gt=0)
    aliases: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.id}"

    def cost(self, usage: Usage) -> float:
        """Dollars for one call's usage, each token class at its own price."""
        p = self.prices
        return _PER_TOKEN * (
            usage.input_tokens * p.input
            + usage.output_tokens * p.output
            + usage.cache_read_tokens * p.cache_read
            + usage.cache_write_5m_tokens * p.cache_write_5m
            + usage.cache_write_1h_tokens * p.cache_write_1h
        )


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry]


class Catalog:
    """Models by id and by alias; ``find`` accepts either, with or without a provider prefix."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._by_id: dict[str, ModelEntry] = {}
        for entry in entries:
            self._by_id[entry.id] = entry
        self._by_name: dict[str, ModelEntry] = {}
        for entry in self._by_id.values():
            for name in (entry.id, entry.spec, *entry.aliases):
                self._by_name[name] = entry

    @classmethod
    def load(cls, extra_files: Iterable[Path] = ()) -> Catalog:
        shipped = resources.files("helios.data").joinpath("models.yaml")
        entries = _parse(shipped.read_text(encoding="utf-8"), "helios/data/models.yaml")
        for path in extra_files:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"catalogue file {path}: cannot read it ({exc.strerror})"
                ) from exc
            entries.extend(_parse(text, str(path)))
        return cls(entries)

    def find(self, name: str) -> ModelEntry | None:
        return self._by_name.get(name)

    def get(self, name: str) -> ModelEntry:
        entry = self.find(name)
        if entry is None:
            raise UnknownModel(f"model '{name}' is not in the catalogue (see `helios models`)")
        return entry

    def lookup(self, provider: str, model: str) -> ModelEntry | None:
        """The entry for a provider's model id, if the catalogue prices it."""
        entry = self._by_id.get(model)
        return entry if entry is not None and entry.provider == provider else None

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


def _parse(text: str, source: str) -> list[ModelEntry]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"catalogue file {source}: not valid YAML: {exc}") from exc
    try:
        return _CatalogFile.model_validate(raw).models
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _describe_location(raw, first["loc"])
        raise ConfigError(f"catalogue file {source}: {where}: {first['msg']}") from exc


def _describe_location(raw: object, loc: tuple[int | str, ...]) -> str:
    """``models[3] (claude-x).prices.input`` instead of pydantic's bare tuple."""
    parts: list[str] = []
    node = raw
    for step in loc:
        if isinstance(step, int):
            label = f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
            if isinstance(node, dict) and "id" in node:
                label += f" ({node['id']})"
            parts.append(label)
        else:
            parts.append(f".{step}" if parts else step)
            node = node.get(step) if isinstance(node, dict) else None
    return "".join(parts) or "top level"
