"""The ``helios`` command line: one module per command group, errors handled once in ``main``.

DESIGN.md sketches a single ``cli.py``; the later command groups (run, ledger, cache,
budget, ...) would push one file far past the size limit, so each group gets a module.
"""

from helios.cli.app import app, main

__all__ = ["app", "main"]
