"""The GGUF files of the local models: where each is, assembled from its parts, verified.

``helios/data/local_models.yaml`` lists them. A *packaged* model is one file inside an
installed wheel. A *parts* model is split over data-only wheels (``<package>1`` …
``<package>N``); on first use its parts are concatenated into
``local.models_dir`` (default ``<data dir>/models``) and the result must have the
release's size and sha256 before llama.cpp may load it: a wrong file is refused with a
:class:`~helios.errors.ConfigError`, never loaded.

Hashing 1 GB takes seconds, so a verified file gets a stamp (``<file>.verified``: size,
mtime, sha256); a later load re-hashes only when the file's size or mtime changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from helios.errors import ConfigError

_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LocalModelFile:
    id: str
    name: str
    install: str
    file: str
    package: str
    """The wheel's import name (packaged) or the parts' name without their number."""
    parts: int = 0
    """0 for a packaged file."""
    size: int | None = None
    sha256: str | None = None

    @property
    def assembled(self) -> bool:
        return self.parts > 0


@lru_cache(maxsize=1)
def local_model_files() -> dict[str, LocalModelFile]:
    text = resources.files("helios.data").joinpath("local_models.yaml").read_text("utf-8")
    entries: list[dict[str, Any]] = yaml.safe_load(text)["local_models"]
    files: dict[str, LocalModelFile] = {}
    for entry in entries:
        packaged = entry.get("packaged")
        if packaged is not None:
            files[entry["id"]] = LocalModelFile(
                entry["id"], entry["name"], entry["install"], packaged["file"], packaged["package"]
            )
        else:
            parts = entry["parts"]
            files[entry["id"]] = LocalModelFile(
                entry["id"],
                entry["name"],
                entry["install"],
                entry["file"],
                parts["package"],
                parts=int(parts["count"]),
                size=int(entry["bytes"]),
                sha256=str(entry["sha256"]),
            )
    return files


def _package_dir(package: str) -> Path | None:
    """An installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        return Path(location)
    return None


def part_paths(model: LocalModelFile) -> list[Path] | None:
    """The installed parts in order, or ``None`` when any is missing."""
    paths: list[Path] = []
    for number in range(1, model.parts + 1):
        folder = _package_dir(f"{model.package}{number}")
        candidate = folder / "data" / f"part{number:02d}.bin" if folder is not None else None
        if candidate is None or not candidate.is_file():
            return None
        paths.append(candidate)
    return paths


def packaged_path(model: LocalModelFile) -> Path | None:
    folder = _package_dir(model.package)
    candidate = folder / model.file if folder is not None else None
    return candidate if candidate is not None and candidate.is_file() else None


def not_installed(model: LocalModelFile) -> str:
    return f"local model '{model.id}' is not installed: {model.install}"


def locate(model: LocalModelFile, models_dir: Path) -> Path:
    """Where the model's file is or will be once assembled; raises :class:`ConfigError`
    when it can be neither found nor assembled. Cheap: reads no model bytes."""
    if not model.assembled:
        path = packaged_path(model)
        if path is None:
            raise ConfigError(not_installed(model))
        return path
    target = models_dir / model.file
    if not target.is_file() and part_paths(model) is None:
        raise ConfigError(not_installed(model))
    return target


def ensure_ready(model: LocalModelFile, models_dir: Path) -> Path:
    """The file, assembled if needed and checked against the release's size and sha256."""
    target = locate(model, models_dir)
    if not model.assembled:
        return target
    if not target.is_file():
        _assemble(model, models_dir, target)
    _verify(model, target)
    return target


def _assemble(model: LocalModelFile, models_dir: Path, target: Path) -> None:
    parts = part_paths(model)
    if parts is None:
        raise ConfigError(not_installed(model))
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(models_dir).free
    except OSError as exc:
        raise ConfigError(f"local.models_dir: cannot use {models_dir} ({exc.strerror})") from exc
    assert model.size is not None
    if free < model.size:
        raise ConfigError(
            f"local model '{model.id}' needs {model.size / 1e9:.2f} GB in {models_dir} "
            f"({free / 1e9:.2f} GB free): free some space or set local.models_dir"
        )
    # A unique temporary name, renamed into place: a concurrent or interrupted assembly
    # never leaves a half-written file under the final name.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
        _check(model, partial.stat().st_size, digest.hexdigest(), "the installed parts")
        os.replace(partial, target)
    except OSError as exc:
        raise ConfigError(
            f"local model '{model.id}': cannot write {target} ({exc.strerror})"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    _stamp(target).write_text(_stamp_text(target, digest.hexdigest()), encoding="utf-8")


def _verify(model: LocalModelFile, target: Path) -> None:
    assert model.sha256 is not None
    stamp = _stamp(target)
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == _stamp_text(target, model.sha256):
        return
    digest = hashlib.sha256()
    with target.open("rb") as source:
        while block := source.read(_BLOCK):
            digest.update(block)
    _check(model, target.stat().st_size, digest.hexdigest(), str(target))
    stamp.write_text(_stamp_text(target, digest.hexdigest()), encoding="utf-8")


def _check(model: LocalModelFile, size: int, sha256: str, what: str) -> None:
    if size != model.size or sha256 != model.sha256:
        hint = (
            "reinstall them (make install)"
            if what == "the installed parts"
            else "delete it: it is assembled again from the installed parts on next use"
        )
        raise ConfigError(
            f"local model '{model.id}': {what}: {size} bytes with sha256 {sha256}, but "
            f"the release is {model.size} bytes with sha256 {model.sha256}; refusing to "
            f"load it: {hint}"
        )


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp_text(target: Path, sha256: str) -> str:
    stat = target.stat()
    return f"{stat.st_size} {stat.st_mtime_ns} {sha256}\n"
