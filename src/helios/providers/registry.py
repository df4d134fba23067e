"""Resolve model specs (``"provider:model"``, catalogue ids, aliases) to bound providers.

Adapters are found through a dict of factories keyed by provider kind and imported lazily,
so a missing optional SDK only matters when a model of that provider is used (and then the
error names the extra to install).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from helios.catalog import Catalog
from helios.config.settings import Settings
from helios.errors import ConfigError, UnknownModel
from helios.providers.base import Provider

ProviderFactory = Callable[[str, str, Settings], Provider]
"""``factory(provider_name, model_id, settings)``: build a provider bound to one model."""

# Each module exposes ``create(name, model, settings) -> Provider``.
BUILTIN_ADAPTERS: dict[str, str] = {
    "anthropic": "helios.providers.anthropic",
    "openai": "helios.providers.openai",
    "gemini": "helios.providers.gemini",
    "llamacpp": "helios.providers.llamacpp",
}

_MAX_ALIAS_DEPTH = 8


def _lazy_factory(module_name: str) -> ProviderFactory:
    def create(name: str, model: str, settings: Settings) -> Provider:
        module = importlib.import_module(module_name)
        factory: ProviderFactory = module.create
        return factory(name, model, settings)

    return create


class ProviderRegistry:
    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self._factories: dict[str, ProviderFactory] = {
            kind: _lazy_factory(module) for kind, module in BUILTIN_ADAPTERS.items()
        }
        self._providers: dict[tuple[str, str], Provider] = {}
        self._aliases: dict[str, str] = {}
        # resolve() may run in a worker thread (the pipeline prepares providers ahead of
        # use) while the event loop resolves too: one provider per spec, never two.
        self._lock = threading.Lock()

    # -- registration -------------------------------------------------------------------
    def register_factory(self, name: str, factory: ProviderFactory) -> None:
        """Make ``name:<model>`` specs build providers with ``factory``."""
        self._factories[name] = factory

    def alias(self, name: str, spec: str) -> None:
        """A built-in alias (e.g. ``auto`` -> ``router:auto``); the settings' aliases win."""
        self._aliases[name] = spec

    def parse_only(self, name: str) -> None:
        """Let ``name:<model>`` specs parse (for cache keys) where no provider is ever built."""
        self._factories.setdefault(name, self._unknown_model_of(name))

    def add(self, provider: Provider) -> None:
        """Serve ``provider.name:provider.model`` with this ready-made provider (tests, doubles)."""
        self._providers[(provider.name, provider.model)] = provider
        self._factories.setdefault(provider.name, self._unknown_model_of(provider.name))

    # -- resolution ---------------------------------------------------------------------
    @property
    def provider_names(self) -> list[str]:
        return sorted({*self._factories, *self.settings.providers})

    def parse(self, spec: str) -> tuple[str, str]:
        """``(provider name, model id)`` for a spec, after aliases and catalogue lookups."""
        original = spec
        spec = spec or self.settings.default_model
        for _ in range(_MAX_ALIAS_DEPTH):
            target = self.settings.aliases.get(spec) or self._aliases.get(spec)
            if target is None:
                break
            spec = target
        else:
            raise ConfigError(f"aliases: '{original}' expands in a loop")
        prefix, sep, rest = spec.partition(":")
        if sep and (prefix in self._factories or prefix in self.settings.providers):
            entry = self.catalog.find(rest)
            model = entry.id if entry is not None and entry.provider == self._kind(prefix) else rest
            if not model:
                raise UnknownModel(f"model spec '{spec}' names no model after '{prefix}:'")
            return prefix, model
        entry = self.catalog.find(spec)
        if entry is not None:
            return entry.provider, entry.id
        raise UnknownModel(
            f"unknown model '{spec}': use a catalogue id or alias (see `helios models`) or "
            f"'provider:model' with a provider among {', '.join(self.provider_names)}"
        )

    def resolve(self, spec: str) -> Provider:
        name, model = self.parse(spec)
        provider = self._providers.get((name, model))
        if provider is not None:
            return provider
        with self._lock:
            provider = self._providers.get((name, model))
            if provider is None:
                factory = self._factories.get(self._kind(name))
                if factory is None:
                    raise UnknownModel(
                        f"provider '{name}' has kind '{self._kind(name)}', which no adapter handles"
                    )
                provider = factory(name, model, self.settings)
                self._providers[(name, model)] = provider
        return provider

    def kind_of(self, name: str) -> str:
        """The adapter kind behind a provider name (``"anthropic"`` for a named endpoint of
        kind anthropic); the name itself for built-in providers."""
        return self._kind(name)

    def _kind(self, name: str) -> str:
        configured = self.settings.providers.get(name)
        return configured.resolved_kind(name) if configured is not None else name

    def _unknown_model_of(self, name: str) -> ProviderFactory:
        def refuse(_name: str, model: str, _settings: Settings) -> Provider:
            raise UnknownModel(f"provider '{name}' has no model '{model}'")

        return refuse

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
