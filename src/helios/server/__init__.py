"""The HTTP server: a FastAPI app with ``/metrics`` and ``/health``; run by ``helios serve``."""

from helios.server.app import create_app

__all__ = ["create_app"]
