"""Where Helios keeps its files when the settings name no path."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """Where Helios keeps its files by default (``HELIOS_DATA_DIR`` or the user data dir)."""
    configured = os.environ.get("HELIOS_DATA_DIR")
    return Path(configured) if configured else Path(platformdirs.user_data_dir("helios"))


def default_models_dir() -> Path:
    """Where model files that Helios assembles or builds are kept by default."""
    return data_dir() / "models"
