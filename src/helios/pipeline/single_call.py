"""The dialectic in one model call (``orchestration.single_call``): splitting its reply.

The ``dialectic`` persona writes ``THESIS:``, ``ANTITHESIS:`` and ``SYNTHESIS:`` sections
in one reply. Models decorate headings (``**Thesis:**``, ``### SYNTHESIS``), so a heading
is any line whose words are one of the three names, with or without markup. A reply with
no synthesis heading is taken whole as the synthesis: the gate then judges what there is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(
    r"^[ \t#*_>-]*(thesis|antithesis|synthesis)[ \t*_]*(?::[ \t*_]*|$)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class DialecticSections:
    thesis: str
    antithesis: str
    synthesis: str
    complete: bool
    """All three headings were found."""


def split_dialectic(text: str) -> DialecticSections:
    found: dict[str, str] = {}
    matches = list(_HEADING.finditer(text))
    for index, match in enumerate(matches):
        name = match.group(1).lower()
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found.setdefault(name, text[match.end() : end].strip())
    synthesis = found.get("synthesis") or text.strip()
    return DialecticSections(
        thesis=found.get("thesis", ""),
        antithesis=found.get("antithesis", ""),
        synthesis=synthesis,
        complete=len(found) == 3 and all(found.values()),
    )
