"""Helios: an asyncio LLM orchestration engine.

The public API is what ``__all__`` lists; everything else is internal and may move.
"""

from helios._version import __version__
from helios.catalog import Catalog, ModelEntry, Prices
from helios.engine import CallObserver, CallRecord, CompletionStream, Engine
from helios.errors import (
    AuthenticationError,
    BadRequest,
    CacheBackendError,
    ConfigError,
    HeliosError,
    InputError,
    MissingDependency,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    UnknownModel,
)
from helios.messages import (
    CacheControl,
    Chunk,
    Completion,
    Message,
    Request,
    SamplingParams,
    Usage,
)
from helios.providers.base import Provider
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry
from helios.settings import LocalModelSettings, ProviderSettings, Settings, load_settings

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "CacheBackendError",
    "CacheControl",
    "CallObserver",
    "CallRecord",
    "Catalog",
    "Chunk",
    "Completion",
    "CompletionStream",
    "ConfigError",
    "Engine",
    "FunctionProvider",
    "HeliosError",
    "InputError",
    "LocalModelSettings",
    "Message",
    "MissingDependency",
    "ModelEntry",
    "Prices",
    "Provider",
    "ProviderError",
    "ProviderRegistry",
    "ProviderSettings",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "Request",
    "SamplingParams",
    "Settings",
    "UnknownModel",
    "Usage",
    "__version__",
    "load_settings",
]
