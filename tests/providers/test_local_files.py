"""Local models shipped in parts: assembled once, checked against their sha256, or refused."""

import hashlib
import os
from pathlib import Path

import pytest

from helios.config.providers import LocalModelSettings
from helios.errors import ConfigError
from helios.providers.local_files import (
    LocalModelFile,
    ensure_ready,
    local_model_files,
    locate,
)
from helios.providers.local_model import DEFAULT_MODEL_ID, SMALLEST_MODEL_ID, model_path

PARTS = [b"GGUF first part ", b"second part ", b"third"]


def install_parts(root: Path, package: str, parts: list[bytes]) -> None:
    for number, data in enumerate(parts, start=1):
        folder = root / f"{package}{number}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("")
        (folder / f"part{number:02d}.bin").write_bytes(data)


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalModelFile:
    package = f"helios_test_parts_{tmp_path.name.replace('-', '_')}_"
    install_parts(tmp_path / "site", package, PARTS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(PARTS)
    return LocalModelFile(
        id="tiny",
        name="a test model",
        install="pip install tiny-parts",
        file="tiny.gguf",
        package=package,
        parts=len(PARTS),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )


def test_parts_are_assembled_once_and_verified(model: LocalModelFile, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    target = locate(model, models_dir)
    assert not target.exists()  # locating reads and writes nothing
    path = ensure_ready(model, models_dir)
    assert path == target and path.read_bytes() == b"".join(PARTS)
    assert [p.name for p in models_dir.iterdir()] == sorted(["tiny.gguf", "tiny.gguf.verified"])
    assert ensure_ready(model, models_dir) == path


def test_parts_that_do_not_match_the_release_are_refused(
    model: LocalModelFile, tmp_path: Path
) -> None:
    wrong = LocalModelFile(**{**_fields(model), "sha256": "0" * 64})
    with pytest.raises(ConfigError, match=r"local model 'tiny': the installed parts: .*refusing"):
        ensure_ready(wrong, tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []  # nothing half-written is left


def test_a_file_changed_after_verification_is_refused(
    model: LocalModelFile, tmp_path: Path
) -> None:
    path = ensure_ready(model, tmp_path / "models")
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))  # a new mtime: the stamp no longer vouches for it
    with pytest.raises(ConfigError, match=r"tiny\.gguf: .*delete it"):
        ensure_ready(model, tmp_path / "models")


def test_missing_parts_name_the_install_command(model: LocalModelFile, tmp_path: Path) -> None:
    missing = LocalModelFile(**{**_fields(model), "parts": len(PARTS) + 1})
    with pytest.raises(ConfigError, match="not installed: pip install tiny-parts"):
        locate(missing, tmp_path / "models")


def test_the_shipped_list_and_the_model_specs() -> None:
    files = local_model_files()
    assert {DEFAULT_MODEL_ID, SMALLEST_MODEL_ID, "qwen2.5-coder-0.5b-instruct"} <= set(files)
    assert files[DEFAULT_MODEL_ID].sha256 == (
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    )
    local = LocalModelSettings(models_dir=Path("/nowhere/models"))
    assert model_path(SMALLEST_MODEL_ID, local).name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def _fields(model: LocalModelFile) -> dict[str, object]:
    return {name: getattr(model, name) for name in LocalModelFile.__slots__}
