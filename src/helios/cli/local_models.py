"""What ``helios models`` says of each local model file: installed, assembled, verified."""

from __future__ import annotations

from pathlib import Path

from helios.config.providers import LocalModelSettings
from helios.providers.local_files import (
    LocalModelFile,
    local_model_files,
    packaged_path,
    part_paths,
)


def local_models(local: LocalModelSettings) -> list[dict[str, str]]:
    models_dir = local.resolved_models_dir()
    return [
        {"id": model.id, "name": model.name, "status": _status(model, local, models_dir)}
        for model in local_model_files().values()
    ]


def _status(model: LocalModelFile, local: LocalModelSettings, models_dir: Path) -> str:
    if not model.assembled:
        path = packaged_path(model)
        return f"ready: {path}" if path is not None else f"not installed: {model.install}"
    target = models_dir / model.file
    if (target.with_name(target.name + ".verified")).is_file():
        return f"ready: {target} (sha256 verified)"
    if target.is_file():
        return f"assembled, sha256 checked on first use: {target}"
    if part_paths(model) is not None:
        return f"parts installed: assembled into {models_dir} on first use"
    return f"not installed: {model.install}"
