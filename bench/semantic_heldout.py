"""The held-out set of short questions: paraphrases to serve, one-word traps to refuse.

``bench/data/l3_heldout_pairs.jsonl`` (provenance in ``bench/data/README.md``): 56 pairs
that should hit and 56 traps (14 each: negation, number_date, entity_swap, scope), written
by hand for Helios. It is an evaluation set only: no rule, parameter or threshold of the
verifier or the embedder was chosen on it, so its figures say how the cache does on
wording it has never seen. Each pair is scored as L3 would serve it with that pair alone
in the index: the stored question ``a`` is the only candidate for the lookup ``b``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from helios.cache.verifier import Candidate, CosineOnly, HitVerifier, Verdict
from semantic_quality_report import label


class Selector(Protocol):
    def select(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> tuple[int, Verdict] | None: ...


HELDOUT = Path(__file__).parent / "data" / "l3_heldout_pairs.jsonl"
SPLIT = "evaluation only: never used to choose a rule, parameter or threshold"


def load_pairs(path: Path = HELDOUT) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def texts_of(pairs: Sequence[dict[str, Any]]) -> set[str]:
    return {pair[key] for pair in pairs for key in ("a", "b")}


def heldout_scores(
    pairs: Sequence[dict[str, Any]],
    vectors: dict[str, np.ndarray],
    thresholds: Sequence[float],
) -> dict[str, Any]:
    """Per arm and threshold: paraphrases served, traps served (by kind, with their ids)."""
    arms: dict[str, Selector] = {
        "cosine": CosineOnly(),
        "verifier, no aligned floor": HitVerifier(aligned_threshold=1.0),
        "verifier": HitVerifier(),
    }
    rows: dict[str, Any] = {}
    for arm, selector in arms.items():
        rows[arm] = {}
        for threshold in thresholds:
            served_ids = []
            for pair in pairs:
                candidate = Candidate(pair["a"], float(vectors[pair["a"]] @ vectors[pair["b"]]))
                if selector.select(pair["b"], [candidate], threshold) is not None:
                    served_ids.append(pair)
            traps = [p for p in served_ids if not p["same_answer"]]
            rows[arm][label(threshold)] = {
                "paraphrases_served": sum(p["same_answer"] for p in served_ids),
                "traps_served": len(traps),
                "traps_by_kind": dict(Counter(p["group"] for p in traps)),
                "trap_ids": [p["id"] for p in traps],
            }
    return {
        "file": str(HELDOUT.relative_to(HELDOUT.parents[2])),
        "paraphrases": sum(p["same_answer"] for p in pairs),
        "traps": sum(not p["same_answer"] for p in pairs),
        "split": SPLIT,
        "results": rows,
    }


def print_heldout(result: dict[str, Any]) -> None:
    held = result["heldout"]
    print(
        f"\nheld-out short questions ({held['file']}; {held['split']}): "
        f"paraphrases served of {held['paraphrases']}, traps served of {held['traps']}"
    )
    for arm, rows in held["results"].items():
        for threshold, row in rows.items():
            kinds = " ".join(f"{k}={n}" for k, n in sorted(row["traps_by_kind"].items()))
            print(
                f"  {arm:26} {threshold:6} paraphrases {row['paraphrases_served']:3}  "
                f"traps {row['traps_served']:3} {kinds}"
            )
