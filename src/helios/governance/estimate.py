"""How many tokens a request will use, before it runs: prompt tokens + the output allowance.

Exact counts need the model's tokenizer. None is assumed here: remote tokenizers need a
network call and the local llama.cpp tokenizer needs the model loaded (hundreds of MB), too
much for a budget check. The default is a documented heuristic, ``ceil(chars / 4)`` per text
plus :data:`MESSAGE_OVERHEAD_TOKENS` per message for the role and framing tokens chat
templates add (English averages about 4 characters per token with BPE tokenizers); callers
that hold a tokenizer inject it as ``tokenizer(text) -> tokens``. The estimate only has to
be close: :meth:`Governor.commit` replaces it with the provider's reported usage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from helios.messages import Request

Tokenizer = Callable[[str], int]
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
DEFAULT_MAX_TOKENS = 1024


def heuristic_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class TokenEstimate:
    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def prompt_tokens(request: Request, tokenizer: Tokenizer | None = None) -> int:
    count = tokenizer or heuristic_tokens
    total = sum(count(message.content) + MESSAGE_OVERHEAD_TOKENS for message in request.messages)
    if request.system:
        total += count(request.system) + MESSAGE_OVERHEAD_TOKENS
    return total


def estimate_tokens(
    request: Request,
    *,
    tokenizer: Tokenizer | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> TokenEstimate:
    """Prompt tokens, and ``max_tokens`` (or ``default_max_tokens``) for the reply."""
    output = request.params.max_tokens or default_max_tokens
    return TokenEstimate(prompt_tokens(request, tokenizer), output)
