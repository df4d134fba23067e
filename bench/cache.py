"""Helios's three-layer cache, measured side by side with baselines and peers in one run.

Sections (each in its own module; this script runs them, prints the tables and writes
bench/results/<name>.json):

- **L2 hit latency** (bench/cache_l2.py): memory, SQLite and Redis, in process, through
  ``ExactCache`` and ``CacheManager.lookup``; a bare redis-py GET of the same ~2 KB value
  is the floor; LiteLLM's cache (local and Redis) is the peer.
- **L3 lookup latency** (bench/cache_l3.py), embedding included, at 10k and 100k entries
  in the usearch index, with the embedding and the search alone beside it, the waterfall
  (L2 miss then L3) and the waterfall miss; GPTCache with the same embedder is the peer.
  The bulk of each index is random unit vectors (see that module's docstring).
- **HTTP /lookup** (bench/cache_http.py): one uvicorn worker serving ``create_app``, load
  from another process: requests/s and latency for L2 hits and for L3 lookups.

``OMP_NUM_THREADS=1`` is set for the whole run (unless already set) before numpy, faiss or
onnxruntime load: on 2 cores faiss's OpenMP threads next to onnxruntime slowed embedding
2-4x. onnxruntime keeps its own thread pool (two intra-op threads for MiniLM, Helios's
default), so the setting changes faiss and numpy's BLAS only, for every arm alike.

Redis: ``--redis-url`` (default ``$HELIOS_TEST_REDIS_URL``, else db 15 on localhost); every
key goes under a throwaway prefix that is deleted at the end. Every file goes to temporary
directories (the cache files, and ``HELIOS_DATA_DIR`` for this process and the servers it
starts: bench/common.py), never to the user's own cache or ledger.

Usage:
    make bench-cache                      # builds .venv-bench (peers) and runs this, ~5 min
    .venv-bench/bin/python bench/cache.py --quick      # a smoke run, ~2 min (<name>_quick.json)
    .venv/bin/python bench/cache.py       # without peers: their rows say why
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cache_common import THRESHOLD, semantic_texts
from cache_http import measure_http
from cache_l2 import measure_l2
from cache_l3 import measure_size
from cache_peers import peer_versions, version_of
from cache_report import http_vs_floors, print_report, ratios, targets
from common import machine, temporary_data_dir

RESULTS = Path(__file__).parent / "results"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"


def reachable_redis(url: str) -> str | None:
    """``None`` when Redis answers at ``url``, else why not."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'helios[redis]')"
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {url.rsplit('@', 1)[-1]} does not answer: {exc}"
    finally:
        client.close()
    return None


def delete_prefix(url: str, prefix: str) -> dict[str, int]:
    """Remove every key the run wrote (all under ``prefix``); what was removed and left."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        removed = 0
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            removed += int(client.unlink(*keys[start : start + 500]))
        left = sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()
    return {"removed": removed, "left": left}


def load_average() -> list[float]:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else []


async def run_in_process(args: argparse.Namespace, folder: Path, prefix: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "l2" in args.sections:
        print("L2 hit latency ...", flush=True)
        results["l2"] = await measure_l2(
            folder, args.redis_url, prefix, args.n_us, args.warmup_us, args.peers
        )
    if "l3" in args.sections:
        from helios.embeddings.onnx import OnnxMiniLM

        embedder = OnnxMiniLM(int8=args.int8)
        # loads onnxruntime before anything imports usearch (which would make it segfault,
        # see bench/cache_http.py's serve) and the model before any timing
        await embedder.embed(["load the model before any timing"])
        texts = semantic_texts()
        results["l3"] = []
        for size in args.sizes:
            print(f"L3 at {size:,} entries ...", flush=True)
            results["l3"].append(
                await measure_size(
                    size, folder, embedder, texts, args.n_ms, args.warmup_ms, args.peers
                )
            )
        results["embedder"] = {
            "name": embedder.name,
            "threads": embedder.threads,
            "int8": embedder.int8,
        }
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-us", type=int, default=3000, help="samples per µs-scale arm (L2)")
    parser.add_argument("--n-ms", type=int, default=300, help="samples per ms-scale arm (L3)")
    parser.add_argument("--warmup-us", type=int, default=300)
    parser.add_argument("--warmup-ms", type=int, default=20)
    parser.add_argument(
        "--sizes", default="10000,100000", help="L3 index sizes, comma-separated (>= 1,000)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections")
    parser.add_argument("--duration", type=float, default=10.0, help="HTTP seconds measured")
    parser.add_argument("--http-warmup", type=float, default=2.0, help="HTTP seconds first")
    parser.add_argument(
        "--sections", default="l2,l3,http", help="comma-separated from l2, l3, http"
    )
    parser.add_argument("--redis-url", default=os.environ.get("HELIOS_TEST_REDIS_URL"))
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument(
        "--packaged-embedder",
        dest="int8",
        action="store_false",
        help="L3 with the packaged MiniLM graph (fp32) instead of its int8 build",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: fewer samples, 2k/10k entries, 3 s loads; writes <name>_quick",
    )
    parser.add_argument("--name", default="cache", help="results file name stem")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--print", type=Path, metavar="JSON", help="only print the tables of a results file"
    )
    args = parser.parse_args()
    if args.quick:
        args.n_us, args.n_ms, args.warmup_us, args.warmup_ms = 500, 100, 50, 5
        args.sizes, args.duration, args.http_warmup = "2000,10000", 3.0, 1.0
        args.name = f"{args.name}_quick"
    args.sizes = [int(size) for size in args.sizes.split(",")]
    args.sections = set(args.sections.split(","))
    if min(args.sizes) < 1000 or args.sections - {"l2", "l3", "http"}:
        parser.error("sizes must be >= 1000; sections among l2, l3, http")
    args.redis_url = args.redis_url or DEFAULT_REDIS
    return args


def limit_openmp() -> None:
    """OMP_NUM_THREADS=1 unless set; it only works before an OpenMP library loads."""
    loaded = [m for m in ("numpy", "faiss", "onnxruntime") if m in sys.modules]
    if loaded:
        raise RuntimeError(f"{', '.join(loaded)} loaded before OMP_NUM_THREADS was set")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    limit_openmp()
    args = parse_args()
    if args.print is not None:
        print_report(json.loads(args.print.read_text()))
        return
    redis_problem = reachable_redis(args.redis_url)
    requested_redis = args.redis_url
    if redis_problem is not None:
        print(f"Redis left out: {redis_problem}")
        args.redis_url = None
    prefix = f"helios-bench-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    load_before = load_average()
    result: dict[str, Any] = {
        "benchmark": "cache",
        "machine": machine(),
        "environment": {
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "redis": "unavailable: " + redis_problem if redis_problem else requested_redis,
            "l3_threshold_cosine": THRESHOLD,
        },
        "versions": {
            name: version_of(name)
            for name in ("helios", "usearch", "onnxruntime", "numpy", "fastapi", "uvicorn")
        }
        | {name: version_of(name) for name in ("httptools", "uvloop")}
        | peer_versions(),
        "config": {
            key: sorted(value) if isinstance(value, set) else value
            for key, value in vars(args).items()
            if key != "out_dir"
        },
    }
    try:
        with (
            temporary_data_dir(),
            tempfile.TemporaryDirectory(prefix="helios-bench-cache-") as name,
        ):
            folder = Path(name)
            result.update(asyncio.run(run_in_process(args, folder, prefix)))
            if "http" in args.sections:
                print("HTTP /lookup ...", flush=True)
                result["http"] = measure_http(
                    folder,
                    semantic_texts(),
                    args.redis_url,
                    prefix,
                    args.concurrency,
                    args.duration,
                    args.http_warmup,
                )
    finally:
        if args.redis_url is not None:
            result["redis_cleanup"] = delete_prefix(args.redis_url, prefix)
    result["load_average"] = {"before": load_before, "after": load_average()}
    result["wall_s"] = time.perf_counter() - started
    result["ratios"] = ratios(result)
    result["http_vs_floors"] = http_vs_floors(result)
    result["targets"] = targets(result)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    print(f"\nwrote {path} in {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
