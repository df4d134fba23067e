"""Cue words, found in one pass over a text's words: the router's vocabulary.

A cue is a phrase of one to four words (``"show that"``), a stem ending in ``*``
(``"summar*"`` matches "summarise" and "summary") or a phrase starting with ``^`` that
counts only at the very start of the text (``"^what"``). Each cue belongs to a group (an
intent, or a signal such as ``hard``). :func:`find` lowercases the text, splits it into words
once and matches every cue by set intersection, so the cost grows with the text's words,
not with the number of cues: a large alternation of regular expressions costs
milliseconds per kilobyte, this costs tens of microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Numbers keep their thousands separators ("10,000"); words keep inner hyphens and
# apostrophes ("lock-free", "what's").
_WORDS = re.compile(r"\d+(?:,\d{3})+|[a-z0-9]+(?:['\u2019-][a-z0-9]+)*")
_MAX_PHRASE = 4


@dataclass(frozen=True, slots=True)
class CueTable:
    """Compiled cues: phrase -> groups, per phrase length; stem -> groups, per stem length."""

    phrases: tuple[dict[str, tuple[str, ...]], ...]
    firsts: frozenset[str]
    """The first words of phrases of two words or more: only they start a longer phrase."""
    starts: dict[str, tuple[str, ...]]
    stems: dict[int, dict[str, tuple[str, ...]]]
    order: tuple[str, ...]

    @classmethod
    def of(cls, groups: Mapping[str, Sequence[str]]) -> CueTable:
        phrases: tuple[dict[str, tuple[str, ...]], ...] = tuple({} for _ in range(_MAX_PHRASE))
        starts: dict[str, tuple[str, ...]] = {}
        stems: dict[int, dict[str, tuple[str, ...]]] = {}
        for group, cues in groups.items():
            for cue in cues:
                if cue.startswith("^"):
                    table, key = starts, cue[1:]
                elif cue.endswith("*"):
                    table, key = stems.setdefault(len(cue) - 1, {}), cue[:-1]
                else:
                    words = cue.split()
                    if not 1 <= len(words) <= _MAX_PHRASE:
                        raise ValueError(f"cue {cue!r}: 1 to {_MAX_PHRASE} words")
                    table, key = phrases[len(words) - 1], " ".join(words)
                table[key] = (*table.get(key, ()), group)
        firsts = frozenset(key.split()[0] for table in phrases[1:] for key in table)
        return cls(phrases, firsts, starts, stems, tuple(groups))

    def find(self, text: str) -> dict[str, list[str]]:
        """The cues of each group found in ``text`` (groups in table order, cues sorted)."""
        return self.find_words(words_of(text))

    def find_words(self, words: list[str]) -> dict[str, list[str]]:
        """:meth:`find` for a text already split by :func:`words_of`."""
        found: dict[str, set[str]] = {}
        unique = set(words)
        singles = self.phrases[0]
        for cue in singles.keys() & unique:
            _add(found, singles[cue], cue)
        for i in [i for i, word in enumerate(words) if word in self.firsts]:
            for size in range(2, len(self.phrases) + 1):
                cue = " ".join(words[i : i + size])
                groups = self.phrases[size - 1].get(cue)
                if groups is not None:
                    _add(found, groups, cue)
        for size in (1, 2):
            start = " ".join(words[:size])
            if start in self.starts:
                _add(found, self.starts[start], start)
        for size, stems in self.stems.items():
            # a word shorter than the stem cannot match it, so no length check is needed
            for stem in stems.keys() & {word[:size] for word in unique}:
                _add(found, stems[stem], stem + "*")
        return {group: sorted(found[group]) for group in self.order if group in found}


def _add(found: dict[str, set[str]], groups: tuple[str, ...], cue: str) -> None:
    for group in groups:
        found.setdefault(group, set()).add(cue)


def words_of(text: str) -> list[str]:
    return _WORDS.findall(text.lower())
