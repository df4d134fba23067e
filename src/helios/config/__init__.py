"""Settings and every section of them: defaults < YAML < environment (``HELIOS_*``) < CLI.

The sections live one family a module (providers, cache, orchestration, governor, router,
ledger, ops); :mod:`helios.config.settings` assembles them and loads them from their sources.
"""

from helios.config.paths import data_dir
from helios.config.settings import Settings, load_settings

__all__ = ["Settings", "data_dir", "load_settings"]
