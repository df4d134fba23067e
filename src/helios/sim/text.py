"""Prompts as segments, the one token approximation, and the deterministic reply text.

**Token counting** (used everywhere in the simulator): a piece of text costs
``ceil(len(text) / 4)`` tokens, and a prompt costs the sum over its segments (one segment
per text block, system part, tool definition or message). No tokenizer is loaded.

**Replies** are words drawn from a fixed vocabulary of three-letter words with an RNG
seeded by a hash of the prompt's roles and texts (plus the config seed), so the same prompt
gives the same text whether streamed or not, and whichever protocol carried it. The first
word is capitalised and every later word carries its separating space, so each streamed
chunk is one word and one token, and ``ceil(len(reply) / 4)`` equals the word count.
Tool calls and JSON documents draw from the same prompt-seeded RNG (:mod:`helios.sim.tools`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from helios.messages import CacheTTL

VOCABULARY: tuple[str, ...] = (
    "sun", "sky", "sea", "air", "fog", "ice", "oak", "elm", "ash", "owl", "fox", "elk",
    "bee", "ant", "ray", "arc", "orb", "gem", "ore", "tin", "map", "key", "bay", "dew",
    "hut", "log", "net", "cup", "jar", "ink", "pen", "kit",
)  # fmt: skip

Finish = Literal["end", "length", "stop_sequence", "tool_call"]


def count_tokens(text: str) -> int:
    """The simulator's token count for ``text``: ``ceil(len(text) / 4)``."""
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class Segment:
    """One countable piece of a prompt, in order.

    ``role`` is ``system``, ``tools``, ``user`` or ``assistant`` whatever the protocol
    calls it; ``cache_ttl`` marks an Anthropic ``cache_control`` breakpoint on the block.
    """

    role: str
    text: str
    cache_ttl: CacheTTL | None = None

    @property
    def tokens(self) -> int:
        return count_tokens(self.text)


def prompt_tokens(segments: Iterable[Segment]) -> int:
    return sum(segment.tokens for segment in segments)


@dataclass(frozen=True)
class ToolCallReply:
    """A call the simulated model makes: ``pieces`` join to its arguments' JSON text.

    ``key`` is a hex digest of the prompt; each protocol builds its call id from it, so
    the same prompt always gets the same id.
    """

    name: str
    arguments: Mapping[str, Any]
    pieces: tuple[str, ...]
    key: str

    @property
    def arguments_json(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class Reply:
    """A generated reply: ``pieces`` are the streamed chunks and join to ``text``.

    A reply that calls a tool has no text: its ``tool_call`` carries the streamed pieces.
    """

    pieces: tuple[str, ...]
    finish: Finish
    stop_sequence: str | None = None
    tool_call: ToolCallReply | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def streamed_pieces(self) -> tuple[str, ...]:
        """What a stream sends one by one: the text's pieces, or the call's arguments'."""
        return self.tool_call.pieces if self.tool_call is not None else self.pieces

    @property
    def output_tokens(self) -> int:
        if self.tool_call is not None:
            return count_tokens(self.tool_call.name) + count_tokens(self.tool_call.arguments_json)
        return count_tokens(self.text)


def reply_for(
    segments: Sequence[Segment],
    *,
    words: int,
    max_tokens: int | None,
    stop: Sequence[str] = (),
    seed: int = 0,
) -> Reply:
    """The reply to a prompt: ``words`` words, cut by ``max_tokens`` or a stop sequence."""
    rng = prompt_rng(segments, seed)
    length = words if max_tokens is None else min(words, max_tokens)
    drawn = [rng.choice(VOCABULARY) for _ in range(length)]
    pieces = [word if i else word.capitalize() for i, word in enumerate(drawn)]
    pieces = [piece if i == 0 else f" {piece}" for i, piece in enumerate(pieces)]
    return finished(pieces, cut_by_length=length < words, stop=stop)


def finished(pieces: Sequence[str], *, cut_by_length: bool, stop: Sequence[str]) -> Reply:
    """A text reply of ``pieces``, cut at the first stop sequence they contain."""
    finish: Finish = "length" if cut_by_length else "end"
    cut = _first_stop(pieces, stop)
    if cut is None:
        return Reply(pieces=tuple(pieces), finish=finish)
    position, sequence = cut
    return Reply(pieces=_truncate(pieces, position), finish="stop_sequence", stop_sequence=sequence)


def prompt_rng(segments: Sequence[Segment], seed: int) -> random.Random:
    """The RNG every made-up part of a reply draws from: seeded by the prompt and ``seed``."""
    return random.Random(_prompt_seed(segments, seed))


def prompt_key(segments: Sequence[Segment], seed: int) -> str:
    """A short hex digest of the prompt, for ids that must not change between calls."""
    return f"{_prompt_seed(segments, seed):016x}"


def _prompt_seed(segments: Sequence[Segment], seed: int) -> int:
    # Cache breakpoints are left out on purpose: moving a breakpoint must not change text.
    digest = hashlib.sha256(str(seed).encode())
    for segment in segments:
        digest.update(b"\x00" + segment.role.encode() + b"\x00" + segment.text.encode())
    return int.from_bytes(digest.digest()[:8], "big")


def _first_stop(pieces: Sequence[str], stop: Sequence[str]) -> tuple[int, str] | None:
    text = "".join(pieces)
    found = [(text.find(seq), seq) for seq in stop if seq and seq in text]
    return min(found) if found else None


def _truncate(pieces: Sequence[str], position: int) -> tuple[str, ...]:
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) >= position:
            if position > used:
                kept.append(piece[: position - used])
            break
        kept.append(piece)
        used += len(piece)
    return tuple(kept)
