"""Resolve model specs (``"provider:model"``, catalogue ids, aliases) to bound providers.

Adapters are found through a dict of factories keyed by provider kind and imported lazily,
so a missing optional SDK only matters when a model of that provider is used (and then the
error names the extra to install). :meth:`ProviderRegistry.unready` tells, without importing
any SDK, whether a spec could run now (SDK installed, key present, local model on disk):
the router chooses only among ready models.

``auto`` (``router:auto``) is not a provider: it asks the engine's router to choose. The
registry parses it (cache keys name it) and refuses to build it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
from collections.abc import Callable

from helios.catalog import Catalog
from helios.config.settings import Settings
from helios.errors import ConfigError, UnknownModel
from helios.providers.base import Provider
from helios.providers.local_model import model_path

ProviderFactory = Callable[[str, str, Settings], Provider]
"""``factory(provider_name, model_id, settings)``: build a provider bound to one model."""

# Each module exposes ``create(name, model, settings) -> Provider``.
BUILTIN_ADAPTERS: dict[str, str] = {
    "anthropic": "helios.providers.anthropic",
    "openai": "helios.providers.openai",
    "gemini": "helios.providers.gemini",
    "llamacpp": "helios.providers.llamacpp",
}
# Kinds whose models cannot call tools (the local llama.cpp adapter refuses them).
_NO_TOOLS = frozenset({"llamacpp"})
# What each built-in kind needs installed: (the SDK's module, the extra that installs it).
_SDKS: dict[str, tuple[str, str]] = {
    "anthropic": ("anthropic", "anthropic"),
    "openai": ("openai", "openai"),
    "gemini": ("google.genai", "gemini"),
    "llamacpp": ("llama_cpp", "local"),
}
ROUTER_NAME = "router"
AUTO_SPEC = f"{ROUTER_NAME}:auto"
"""The spec of ``auto``: the engine's router chooses the model per call."""

_MAX_ALIAS_DEPTH = 8


def _lazy_factory(module_name: str) -> ProviderFactory:
    def create(name: str, model: str, settings: Settings) -> Provider:
        module = importlib.import_module(module_name)
        factory: ProviderFactory = module.create
        return factory(name, model, settings)

    return create


def _is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (``google``) is missing
        return False


class ProviderRegistry:
    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self._factories: dict[str, ProviderFactory] = {
            kind: _lazy_factory(module) for kind, module in BUILTIN_ADAPTERS.items()
        }
        self._providers: dict[tuple[str, str], Provider] = {}
        self._aliases: dict[str, str] = {"auto": AUTO_SPEC}
        self._installed: dict[str, bool] = {}
        self._factories[ROUTER_NAME] = self._not_a_provider
        # resolve() may run in a worker thread (the engine resolves off the event loop, the
        # pipeline prepares providers ahead of use) while the loop resolves too: one
        # provider per spec, never two.
        self._lock = threading.Lock()

    # -- registration -------------------------------------------------------------------
    def register_factory(self, name: str, factory: ProviderFactory) -> None:
        """Make ``name:<model>`` specs build providers with ``factory``."""
        self._factories[name] = factory

    def alias(self, name: str, spec: str) -> None:
        """A built-in alias; the settings' aliases win."""
        self._aliases[name] = spec

    def add(self, provider: Provider) -> None:
        """Serve ``provider.name:provider.model`` with this ready-made provider (tests, doubles)."""
        self._providers[(provider.name, provider.model)] = provider
        self._factories.setdefault(provider.name, self._unknown_model_of(provider.name))

    # -- resolution ---------------------------------------------------------------------
    @property
    def provider_names(self) -> list[str]:
        return sorted({*self._factories, *self.settings.providers} - {ROUTER_NAME})

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
            f"unknown model '{spec}': use a catalogue id or alias (see `helios models`), "
            f"'auto', or 'provider:model' with a provider among {', '.join(self.provider_names)}"
        )

    def canonical(self, spec: str) -> str:
        """``"provider:model"`` for any spec."""
        provider, model = self.parse(spec)
        return f"{provider}:{model}"

    def is_auto(self, spec: str) -> bool:
        """Whether ``spec`` asks the router to choose."""
        return self.parse(spec)[0] == ROUTER_NAME

    def resolve(self, spec: str) -> Provider:
        """The provider for ``spec``, built on first use (the SDK imported, the client made)."""
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

    async def aresolve(self, spec: str) -> Provider:
        """:meth:`resolve` without blocking the event loop: a provider not yet built (an SDK
        import can take a second) is built in a worker thread."""
        provider = self._providers.get(self.parse(spec))
        if provider is not None:
            return provider
        return await asyncio.to_thread(self.resolve, spec)

    def unready(self, spec: str, *, tools: bool = False) -> str | None:
        """Why ``spec`` cannot run now (SDK missing, no key, no local model file; with
        ``tools``, a model that cannot call them), or ``None`` when it can. Imports nothing
        and builds nothing."""
        try:
            name, model = self.parse(spec)
        except ConfigError as exc:
            return str(exc)
        kind = self._kind(name)
        if tools and kind in _NO_TOOLS:
            return "cannot call tools"
        if (name, model) in self._providers:
            return None
        if name == ROUTER_NAME:
            return "auto is a routing decision, not a model"
        if kind not in BUILTIN_ADAPTERS:
            return None if kind in self._factories else f"no adapter handles kind '{kind}'"
        module, extra = _SDKS[kind]
        if module not in self._installed:  # a file-system search: once per process
            self._installed[module] = _is_installed(module)
        if not self._installed[module]:
            return f"{module} is not installed: pip install 'helios[{extra}]'"
        if kind == "llamacpp":
            try:
                model_path(model, self.settings.local)
            except ConfigError as exc:
                return str(exc)
            return None
        config = self.settings.provider(name)
        keyless_endpoint = kind == "openai" and name != "openai" and config.base_url is not None
        if config.key(name) is None and not keyless_endpoint:
            return config.missing_key_message(name)
        return None

    def cached(self) -> list[Provider]:
        """The providers built so far."""
        return list(self._providers.values())

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

    @staticmethod
    def _not_a_provider(_name: str, _model: str, _settings: Settings) -> Provider:
        raise ConfigError("'auto' is decided per call by the engine's router, not a provider")

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
