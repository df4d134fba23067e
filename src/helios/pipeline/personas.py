"""Personas as data: shipped in ``helios/data/personas.yaml``, overridden in settings.

A persona is a system text, a user-prompt template with named placeholders, and call
defaults (model or tier, temperature, max tokens, streaming). Rendering fails with a
:class:`~helios.errors.ConfigError` that names the persona and the unknown placeholder.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helios.catalog import Tier
from helios.config.orchestration import PersonaSettings
from helios.config.settings import Settings
from helios.errors import ConfigError
from helios.messages import CallContext, Message, Request, SamplingParams

_FORMATTER = string.Formatter()


class Persona(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    system: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    model: str | None = None
    tier: Tier | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    streaming: bool = True
    response_schema: dict[str, Any] | None = None

    @property
    def placeholders(self) -> set[str]:
        return _fields_of(self.system) | _fields_of(self.prompt)

    def render(self, values: Mapping[str, str]) -> tuple[str, str]:
        """``(system, prompt)`` with the placeholders filled from ``values``."""
        missing = self.placeholders - set(values)
        if missing:
            raise ConfigError(
                f"persona '{self.name}': unknown placeholder(s) "
                f"{', '.join('{' + name + '}' for name in sorted(missing))}; "
                f"available: {', '.join(sorted(values))}"
            )
        return self.system.format_map(values), self.prompt.format_map(values)

    def request(
        self,
        values: Mapping[str, str],
        *,
        model: str,
        task_type: str = "dialectic",
        context: CallContext | None = None,
    ) -> Request:
        """The call this persona makes; ``context`` says for whom (its persona is this one)."""
        system, prompt = self.render(values)
        context = (context or CallContext()).model_copy(update={"persona": self.name})
        return Request(
            messages=(Message(role="user", content=prompt),),
            system=system,
            model=model,
            params=SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens),
            task_type=task_type,
            context=context,
            response_schema=self.response_schema,
        )

    def model_spec(self, settings: Settings, override: str | None = None) -> str:
        """The model this persona calls: a CLI override, its own model, its tier, the default."""
        if override:
            return override
        if self.model:
            return self.model
        if self.tier is not None:
            return settings.tiers[self.tier]
        return settings.default_model


def _fields_of(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in _FORMATTER.parse(template) if name}
    except ValueError as exc:  # an unbalanced brace
        raise ConfigError(
            f"persona template is malformed: {exc} (write literal braces as {{{{ }}}})"
        ) from exc


def load_personas(settings: Settings) -> dict[str, Persona]:
    """The shipped personas with the settings' overrides applied, plus any new ones."""
    shipped = _shipped()
    merged: dict[str, Persona] = {}
    for name in sorted({*shipped, *settings.personas}):
        base = shipped.get(name, {})
        override = settings.personas.get(name, PersonaSettings())
        fields: dict[str, Any] = {**base, **override.model_dump(exclude_none=True), "name": name}
        try:
            persona = Persona.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            hint = " (a new persona needs system and prompt)" if name not in shipped else ""
            raise ConfigError(f"personas.{name}.{where}: {first['msg']}{hint}") from None
        persona.placeholders  # noqa: B018 - validate template syntax now, not mid-pipeline
        merged[name] = persona
    return merged


def _shipped() -> dict[str, dict[str, Any]]:
    text = resources.files("helios.data").joinpath("personas.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    personas: dict[str, dict[str, Any]] = raw["personas"]
    return personas


def with_run_cache_key(request: Request, goal: str) -> Request:
    """The request keyed for OpenAI's prompt cache by its run: every persona of a run shares
    one ``prompt_cache_key`` (from the goal, so a repeated run keeps its response-cache
    keys), whatever turns follow the shared prefix."""
    key = "helios-run-" + hashlib.sha256(goal.encode("utf-8")).hexdigest()[:24]
    return request.model_copy(update={"metadata": {**request.metadata, "prompt_cache_key": key}})
