"""Token counting and the deterministic reply text."""

from __future__ import annotations

import pytest

from helios.sim import VOCABULARY, count_tokens
from helios.sim.text import Segment, prompt_tokens, reply_for

PROMPT = (Segment("system", "Be brief."), Segment("user", "Tell me about the sea."))


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2)])
def test_tokens_are_characters_over_four_rounded_up(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_prompt_tokens_sum_segments() -> None:
    assert prompt_tokens(PROMPT) == count_tokens("Be brief.") + count_tokens(
        "Tell me about the sea."
    )


def test_reply_is_deterministic_and_depends_on_prompt_and_seed() -> None:
    first = reply_for(PROMPT, words=24, max_tokens=None)
    assert first == reply_for(PROMPT, words=24, max_tokens=None)
    assert first.text != reply_for(PROMPT[1:], words=24, max_tokens=None).text
    assert first.text != reply_for(PROMPT, words=24, max_tokens=None, seed=1).text


def test_cache_breakpoints_do_not_change_the_reply() -> None:
    marked = (Segment("system", "Be brief.", "1h"), PROMPT[1])
    assert reply_for(marked, words=24, max_tokens=None) == reply_for(
        PROMPT, words=24, max_tokens=None
    )


def test_pieces_are_one_word_and_one_token_each() -> None:
    reply = reply_for(PROMPT, words=24, max_tokens=None)
    assert len(reply.pieces) == 24
    assert reply.pieces[0][0].isupper()
    assert all(piece.startswith(" ") for piece in reply.pieces[1:])
    assert {piece.strip().lower() for piece in reply.pieces} <= set(VOCABULARY)
    assert reply.output_tokens == 24
    assert reply.finish == "end"


def test_max_tokens_caps_the_reply() -> None:
    reply = reply_for(PROMPT, words=24, max_tokens=5)
    assert len(reply.pieces) == 5
    assert reply.finish == "length"
    assert reply.text == "".join(reply_for(PROMPT, words=24, max_tokens=None).pieces[:5])
    assert reply_for(PROMPT, words=24, max_tokens=24).finish == "end"


def test_stop_sequence_cuts_before_it() -> None:
    full = reply_for(PROMPT, words=24, max_tokens=None)
    stop = full.pieces[3] + full.pieces[4][:2]  # spans a chunk boundary
    reply = reply_for(PROMPT, words=24, max_tokens=None, stop=["zzz", stop])
    assert reply.text == "".join(full.pieces[:3])
    assert reply.finish == "stop_sequence"
    assert reply.stop_sequence == stop


def test_stop_sequence_inside_a_word_keeps_the_partial_piece() -> None:
    full = reply_for(PROMPT, words=24, max_tokens=None)
    stop = full.pieces[2][2:]
    reply = reply_for(PROMPT, words=24, max_tokens=None, stop=[stop])
    assert reply.text == full.text[: full.text.index(stop)]
    assert reply.output_tokens == count_tokens(reply.text)
