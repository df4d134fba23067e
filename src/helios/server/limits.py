"""Bounds on the numbers a request may carry, whatever the route: a number past them is a
typing accident or an attack, and is refused (naming the field) before any work."""

MAX_TOKENS = 2**31 - 1
"""Token counts (``max_tokens``, ``tokens_used``, ...): a 32-bit count, more than any model
reads or writes, and what every provider's API and store takes."""

MAX_RPM = 1_000_000
"""A key's requests per minute."""
