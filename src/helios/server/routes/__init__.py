"""The server's routers, one module per concern; each exposes ``router(state)``."""
