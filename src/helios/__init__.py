"""Helios: an asyncio LLM orchestration engine.

The public API is what ``__all__`` lists; everything else is internal and may move.
"""

from helios._version import __version__
from helios.catalog import Catalog, ModelEntry, Prices
from helios.config.providers import LocalModelSettings, ProviderSettings
from helios.config.settings import Settings, load_settings
from helios.engine import CallObserver, CallRecord, CompletionStream, Engine
from helios.errors import (
    AuthenticationError,
    BadRequest,
    BudgetExceeded,
    CacheBackendError,
    ConfigError,
    GovernorStateError,
    HeliosError,
    InputError,
    LedgerError,
    MissingDependency,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    UnknownModel,
)
from helios.ledger.sink import EventSink, MemorySink
from helios.messages import (
    CacheControl,
    CallContext,
    Chunk,
    Completion,
    Message,
    Request,
    SamplingParams,
    Usage,
)
from helios.pipeline.results import DialecticResult
from helios.pipeline.runner import run_dialectic
from helios.providers.base import Provider
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry
from helios.runtime import Runtime

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BudgetExceeded",
    "CacheBackendError",
    "CacheControl",
    "CallContext",
    "CallObserver",
    "CallRecord",
    "Catalog",
    "Chunk",
    "Completion",
    "CompletionStream",
    "ConfigError",
    "DialecticResult",
    "Engine",
    "EventSink",
    "FunctionProvider",
    "GovernorStateError",
    "HeliosError",
    "InputError",
    "LedgerError",
    "LocalModelSettings",
    "MemorySink",
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
    "Runtime",
    "SamplingParams",
    "Settings",
    "UnknownModel",
    "Usage",
    "__version__",
    "load_settings",
    "run_dialectic",
]
