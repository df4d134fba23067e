"""The labelled routing set of ``bench/data/`` (see ``bench/data/README.md``), as requests.

Each row of ``router_prompts.jsonl`` is a prompt, its task kind, the tier it should go to
(``strong`` or ``fast``) and its half (``tune`` or ``heldout``). A row may attach passages
of ``router_passages.json``: they come before the prompt when it speaks of "the text
above", after it otherwise, as a user would paste them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from helios.messages import Request

DATA = Path(__file__).parent / "data"
PROMPTS = DATA / "router_prompts.jsonl"
PASSAGES = DATA / "router_passages.json"
HALVES = ("tune", "heldout")


@dataclass(frozen=True)
class Labelled:
    id: str
    kind: str
    tier: str
    split: str
    request: Request


def split_of(row_id: str) -> str:
    """The fixed half of a row: the first byte of sha256(id), even -> tune, odd -> heldout."""
    return "tune" if hashlib.sha256(row_id.encode()).digest()[0] % 2 == 0 else "heldout"


def _text(prompt: str, attach: list[str], passages: dict[str, str]) -> str:
    if not attach:
        return prompt
    material = "\n\n".join(passages[name] for name in attach)
    return f"{material}\n\n{prompt}" if "above" in prompt else f"{prompt}\n\n{material}"


def load() -> list[Labelled]:
    passages: dict[str, str] = json.loads(PASSAGES.read_text(encoding="utf-8"))
    rows = []
    for line in PROMPTS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["split"] != split_of(row["id"]):
            raise ValueError(f"{row['id']}: split {row['split']!r} is not the recorded rule's")
        text = _text(row["prompt"], row.get("attach", []), passages)
        request = Request.of(text, model="auto")
        rows.append(Labelled(row["id"], row["kind"], row["tier"], row["split"], request))
    return rows
