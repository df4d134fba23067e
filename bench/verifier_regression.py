"""A learned verifier, measured: logistic regression over the verifier's alignment features.

Trained (numpy, Newton's method with a small L2 penalty) on the fow-cache question pairs of
the tune half (sha256(id) even) that the rule verifier accepts; each pair's score is the
model's probability, 0 when the rules reject it. Reported per half: the best share of
should-hit pairs served with traps <= 1 %, and the threshold that achieves it. Features:
cosine, share of aligned content words, words left over on the longer / shorter side, and
cosine x share. Not used by Helios (bench/README.md says why); kept so that the figures
can be rerun. Reads fow-cache only.

Usage: .venv/bin/python bench/verifier_regression.py
"""

from __future__ import annotations

import asyncio

import numpy as np

from helios.cache.verifier import Candidate, HitVerifier
from helios.cache.wording import align
from helios.embeddings.onnx import OnnxMiniLM
from semantic_quality import split_of

try:
    from fow_cache import load_questions
except ImportError as exc:  # a dev extra
    raise SystemExit("fow-cache is missing: .venv/bin/pip install fow-cache==0.1.0") from exc

FEATURES = ("cosine", "aligned share", "left (more)", "left (fewer)", "cosine x share")
SETS = {
    "cosine": [0],
    "cosine + share": [0, 1],
    "+ left words": [0, 1, 2, 3],
    "all": [0, 1, 2, 3, 4],
}


def features(verifier: HitVerifier, query: str, stored: str, cosine: float) -> list[float]:
    q, c = verifier.signature(query), verifier.signature(stored)
    alignment = align(q, c)
    total = len(q.tokens) + len(c.tokens)
    share = alignment.matched / total if total else 1.0
    left = sorted((len(alignment.left_query), len(alignment.left_candidate)))
    return [cosine, share, float(left[1]), float(left[0]), cosine * share]


def fit(x: np.ndarray, y: np.ndarray, penalty: float = 1e-2) -> np.ndarray:
    xb = np.c_[np.ones(len(x)), x]
    w = np.zeros(xb.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-xb @ w))
        hessian = xb.T @ (xb * (p * (1 - p))[:, None]) + penalty * np.eye(len(w))
        w -= np.linalg.solve(hessian, xb.T @ (p - y) + penalty * w)
    return w


def best_served(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    best, at = 0.0, float("nan")
    for threshold in np.unique(scores):
        if (scores[~same] >= threshold).sum() <= 0.01 * (~same).sum():
            served = float((scores[same] >= threshold).mean())
            if served > best:
                best, at = served, float(threshold)
    return best, at


async def main() -> None:
    questions = load_questions()
    embedder = OnnxMiniLM()
    texts = sorted({q[k] for q in questions for k in ("a", "b")})
    vectors = dict(zip(texts, await embedder.embed(texts), strict=True))
    verifier = HitVerifier()
    rows, labels, halves, accepted = [], [], [], []
    for q in questions:
        cosine = float(vectors[q["a"]] @ vectors[q["b"]])
        rows.append(features(verifier, q["b"], q["a"], cosine))
        labels.append(bool(q["same_answer"]))
        halves.append(split_of(q["id"]))
        accepted.append(verifier.verify(q["b"], Candidate(q["a"], cosine)).accepted)
    x, same, half, ok = np.array(rows), np.array(labels), np.array(halves), np.array(accepted)
    rules = np.where(ok, x[:, 0], -1.0)
    for name in ("tune", "held_out"):
        part = half == name
        served, at = best_served(rules[part], same[part])
        print(f"rules + cosine           {name:8} served {served:.3f} at traps <= 1% (t={at:.3f})")
    for label, columns in SETS.items():
        train = (half == "tune") & ok
        w = fit(x[train][:, columns], same[train].astype(float))
        scores = np.where(ok, 1 / (1 + np.exp(-(np.c_[np.ones(len(x)), x[:, columns]] @ w))), 0)
        for name in ("tune", "held_out"):
            part = half == name
            served, at = best_served(scores[part], same[part])
            print(f"{label:24} {name:8} served {served:.3f} at traps <= 1% (t={at:.3f})")
        named = ", ".join(f"{FEATURES[c]} {w[i + 1]:+.2f}" for i, c in enumerate(columns))
        print(f"  weights: bias {w[0]:+.2f}, {named}")


if __name__ == "__main__":
    asyncio.run(main())
