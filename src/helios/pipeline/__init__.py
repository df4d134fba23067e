"""Pipelines: callers of the engine that chain persona calls."""
