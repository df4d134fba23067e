"""Helios's one cache: L1 prompt-cache breakpoints, L2 exact match, L3 semantic.

Layers build keys, serialize values, count hits and fail open; backends only store bytes.
"""

from helios.cache.backends.base import CacheBackend, Clock
from helios.cache.backends.memory import MemoryBackend
from helios.cache.backends.sqlite import SQLiteBackend
from helios.cache.exact import CacheCounts, CachedReply, CacheStats, ExactCache
from helios.cache.keys import namespace_of, prefix_for, request_key

__all__ = [
    "CacheBackend",
    "CacheCounts",
    "CacheStats",
    "CachedReply",
    "Clock",
    "ExactCache",
    "MemoryBackend",
    "SQLiteBackend",
    "namespace_of",
    "prefix_for",
    "request_key",
]
