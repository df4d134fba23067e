"""Settings of the model providers: remote endpoints, the local llama.cpp model, embeddings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from helios.config.paths import default_models_dir
from helios.config.section import Section

ProviderKind = Literal["anthropic", "openai", "gemini", "llamacpp"]

# Where each remote provider's key is read from when the settings do not hold one.
DEFAULT_KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}


class ProviderSettings(Section):
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
    retry_base_delay_s: float = Field(
        default=0.5, ge=0, description="the wait before the first retry; it doubles after"
    )
    max_retry_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="longest retry-after Helios sleeps; a longer one goes back to the caller",
    )
    first_token_timeout_s: float | None = Field(
        default=30.0,
        gt=0,
        description="an attempt that streams nothing for this long fails and is retried "
        "(null: only timeout_s applies)",
    )
    deadline_s: float | None = Field(
        default=300.0,
        gt=0,
        description="the longest one call to this endpoint may take, every attempt and "
        "retry wait included (null: no limit)",
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


class LocalModelSettings(Section):
    """The embedded llama.cpp models (``helios/data/local_models.yaml``)."""

    model_path: Path | None = Field(
        default=None, description="a GGUF file that replaces the local models' files"
    )
    models_dir: Path | None = Field(
        default=None,
        description="where models shipped in parts are assembled (default: <data dir>/models)",
    )
    prefix_reuse: bool = Field(
        default=True,
        description="reuse the KV cache of the prompt prefix the previous call shared",
    )
    n_ctx: int = Field(default=4096, ge=256)
    n_threads: int | None = Field(default=None, ge=1)
    seed: int = 0
    default_max_tokens: int = Field(default=256, gt=0)
    repeat_penalty: float = Field(
        default=1.1, ge=1.0, le=2.0, description="discourages the loops small models fall into"
    )

    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else default_models_dir()


class EmbeddingSettings(Section):
    model_path: Path | None = None
    tokenizer_path: Path | None = None
    threads: int | None = Field(default=None, ge=1)
    int8: bool = Field(
        default=True,
        description="run the packaged model as its int8 build (about 1.4x faster, the same "
        "vectors to 0.998 cosine, another embedder name); ignored with model_path",
    )
    build_dir: Path | None = Field(
        default=None, description="where the int8 build is kept (default: <data dir>/models)"
    )

    def resolved_build_dir(self) -> Path:
        return self.build_dir if self.build_dir is not None else default_models_dir()
