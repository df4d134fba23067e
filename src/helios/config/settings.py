"""Settings, built once at the edge (CLI or server start-up) and passed down.

Precedence, lowest first: defaults < YAML file (``helios.yaml`` in the working directory or
``--config``) < environment (``HELIOS_*``, nested keys joined with ``__``, e.g.
``HELIOS_PROVIDERS__OPENAI__BASE_URL``) < CLI flags. Unknown keys and wrong types are
rejected with the file (or variable), the key and what was expected; so is a ``HELIOS_*``
variable that names no setting (with the closest name), except the few Helios reads itself
(:data:`NON_SETTING_VARIABLES`, ``HELIOS_TEST_*``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from helios.catalog import Tier
from helios.config.cache import CacheSettings
from helios.config.governor import GovernorSettings
from helios.config.keys import KeySettings
from helios.config.ledger import LedgerSettings
from helios.config.ops import FlagSettings, MonitorSettings
from helios.config.orchestration import OrchestrationSettings, PersonaSettings
from helios.config.providers import EmbeddingSettings, LocalModelSettings, ProviderSettings
from helios.config.router import RouterSettings
from helios.config.server import ServerSettings
from helios.config.tasks import TasksSettings
from helios.errors import ConfigError

DEFAULT_CONFIG_FILE = "helios.yaml"
ENV_PREFIX = "HELIOS_"

# HELIOS_* variables that are not settings: read directly where they matter.
NON_SETTING_VARIABLES = frozenset(
    {
        "HELIOS_DATA_DIR",  # where files go by default (config/paths.py)
        "HELIOS_REQUIRE_SERVICES",  # tests: a missing service fails rather than skips
        "HELIOS_SERVER_URL",  # helios submit / tasks: the server they speak to
        "HELIOS_API_KEY",  # helios submit / tasks: the key they present
    }
)
NON_SETTING_PREFIXES = ("HELIOS_TEST_",)  # tests: service URLs (HELIOS_TEST_REDIS_URL, ...)


def _default_tiers() -> dict[Tier, str]:
    return {"strong": "opus", "fast": "sonnet", "local": "local"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
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
    keys: KeySettings = Field(default_factory=KeySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    tasks: TasksSettings = Field(default_factory=TasksSettings)

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
    environment = os.environ if environ is None else environ
    _check_environment(environment)
    path, values = _read_yaml(config_file)
    cli_values = dict(overrides or {})
    try:
        loaded = _with_yaml(values)(**cli_values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, values, cli_values, environment)) from None
    # Hand back a plain Settings: the per-load subclass only existed to add the file source.
    fields = {name: getattr(loaded, name) for name in Settings.model_fields}
    return Settings.model_construct(_fields_set=loaded.model_fields_set, **fields)


def _check_environment(environ: Mapping[str, str]) -> None:
    """Refuse ``HELIOS_*`` variables that name no setting: a typo would otherwise be ignored
    in silence (nested keys, ``HELIOS_CACHE__TTL``, are checked by the section itself)."""
    settings = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = []
    for variable in sorted(environ):
        upper = variable.upper()  # the environment is read case-insensitively
        if not upper.startswith(ENV_PREFIX) or upper in NON_SETTING_VARIABLES:
            continue
        if upper.startswith(NON_SETTING_PREFIXES) or upper.split("__", 1)[0] in settings:
            continue
        unknown.append(f"environment variable {variable}: not a Helios setting{_hint(upper)}")
    if len(unknown) == 1:
        raise ConfigError(unknown[0])
    if unknown:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(unknown))


def _hint(variable: str) -> str:
    top, nested, rest = variable.removeprefix(ENV_PREFIX).partition("__")
    settings = sorted(name.upper() for name in Settings.model_fields)
    others = sorted(name.removeprefix(ENV_PREFIX) for name in NON_SETTING_VARIABLES)
    # compared without the prefix, which every name shares and would make all look alike
    close = difflib.get_close_matches(top, settings if nested else [*settings, *others], 1, 0.7)
    if not close:
        return f" (settings are {ENV_PREFIX}<KEY>, nested keys joined with '__')"
    return f" (did you mean {ENV_PREFIX}{close[0]}{nested}{rest}?)"


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
