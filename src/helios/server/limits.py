"""Bounds on the numbers a request may carry, whatever the route: a number past them is a
typing accident or an attack, and is refused (naming the field) before any work."""

MAX_TOKENS = 2**31 - 1
"""Token counts (``max_tokens``, ``tokens_used``, ...): a 32-bit count, more than any model
reads or writes, and what every provider's API and store takes."""

GATEWAY_BODY_BYTES = 16 * 1024 * 1024
"""A gateway request's whole body, refused (413) before it is read: a million tokens of
context is about 4 MB of text, and JSON escapes may double it."""

MAX_RPM = 1_000_000
"""A key's requests per minute."""
