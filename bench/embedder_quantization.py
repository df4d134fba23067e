"""Why dynamic int8 re-quantisation of MiniLM lost correct hits in one trial and not another.

For the packaged model and each recipe built by ``scripts/quantize_embedder.py`` (per-tensor
or per-channel weights, full or reduced range, every supported op or MatMul only), every
text of GPTCache's mock data is embedded two ways: **alone** (one text per call, no
padding: what an L3 lookup does) and **in batches** of 64 padded to the longest text (what
``OnnxMiniLM`` does for a list, and what ``semantic_quality.py`` did). GPTCache's protocol
is then scored with cosine + the verifier at the default threshold and at top-1, and fow-cache's
questions as its served share at traps <= 1 %. Also: the cosine of each variant's vectors to
the packaged model's (alone), and whether a text's vector depends on its batch-mates.

Only GPTCache and fow-cache are read here: the recipe is chosen on them, never on
``bench/data/l3_heldout_pairs.jsonl``.

Usage: .venv/bin/python bench/embedder_quantization.py MODEL.onnx [...] (name=path or path)
Writes bench/results/embedder_quantization.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import machine, temporary_data_dir
from helios.cache.verifier import Candidate, HitVerifier
from helios.embeddings.onnx import OnnxMiniLM
from helios.percentiles import percentile
from semantic_quality import GPTCACHE, REJECTED, gptcache_counts, gptcache_lookups
from semantic_quality_report import TOP1

try:
    from fow_cache import evaluate, load_questions
except ImportError as exc:  # a dev extra
    raise SystemExit("fow-cache is missing: .venv/bin/pip install fow-cache==0.1.0") from exc

RESULTS = Path(__file__).parent / "results" / "embedder_quantization.json"
THRESHOLD = 0.85
LATENCY_QUESTION = "How do I reset my password for the mobile app?"


async def vectors_of(embedder: OnnxMiniLM, texts: list[str], batch: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        out.update(zip(chunk, await embedder.embed(chunk), strict=True))
    return out


def fow_served(vectors: dict[str, Any]) -> float:
    verifier = HitVerifier()

    def score(cached: str, new: str) -> float:
        cosine = float(vectors[cached] @ vectors[new])
        return cosine if verifier.verify(new, Candidate(cached, cosine)).accepted else REJECTED

    report = evaluate(score, dataset="questions", threshold=THRESHOLD)
    return float(report.best_threshold(max_wrong=0.01)[1])


async def latency(embedder: OnnxMiniLM, runs: int) -> float:
    for _ in range(20):
        await embedder.embed([LATENCY_QUESTION])
    spent = []
    for _ in range(runs):
        started = time.perf_counter()
        await embedder.embed([LATENCY_QUESTION])
        spent.append((time.perf_counter() - started) * 1000)
    return round(percentile(spent, 0.5), 3)


async def run(models: dict[str, Path | None], runs: int) -> dict[str, Any]:
    pairs = json.loads(GPTCACHE.read_text())
    questions = load_questions()
    texts = sorted({p[k] for p in pairs for k in ("origin", "similar")})
    texts += sorted({q[k] for q in questions for k in ("a", "b")} - set(texts))
    reference: dict[str, Any] | None = None
    rows: dict[str, Any] = {}
    for name, path in models.items():
        embedder = OnnxMiniLM(model_path=path, int8=False)  # None: the packaged graph
        alone = await vectors_of(embedder, texts, 1)
        batched = await vectors_of(embedder, texts, 64)
        reference = reference or alone
        row: dict[str, Any] = {"model_file": str(embedder.model_path), "embedder": embedder.name}
        drift = np.array([float(alone[t] @ batched[t]) for t in texts])
        to_packaged = np.array([float(alone[t] @ reference[t]) for t in texts])
        row["alone_vs_batched_cosine"] = {"min": float(drift.min()), "mean": float(drift.mean())}
        row["vs_packaged_cosine"] = {
            "min": float(to_packaged.min()),
            "mean": float(to_packaged.mean()),
        }
        for how, vectors in (("alone", alone), ("batched", batched)):
            lookups = gptcache_lookups(pairs, vectors, 5)
            row[how] = {
                "gptcache_0.85": gptcache_counts(HitVerifier(), lookups, THRESHOLD),
                "gptcache_top1": gptcache_counts(HitVerifier(), lookups, TOP1),
                "fow_served_at_traps_1pct": fow_served(vectors),
            }
        row["embed_one_p50_ms"] = await latency(embedder, runs)
        rows[name] = row
        print(name, json.dumps(row))
    return {"machine": machine(), "threshold": THRESHOLD, "variants": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="name=path.onnx (the packaged model is first)")
    parser.add_argument("--runs", type=int, default=200, help="single-question embeds timed")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    models: dict[str, Path | None] = {"packaged": None}
    for spec in args.models:
        name, _, path = spec.rpartition("=")
        models[name or Path(path).stem] = Path(path)
    with temporary_data_dir():
        result = asyncio.run(run(models, args.runs))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
