"""The local MiniLM embedder, run for real (the model loads in about 0.3 s, once)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helios.embeddings import (
    LOCAL_MINILM,
    LOCAL_MINILM_INT8,
    Embedder,
    OnnxMiniLM,
    embedder_name_for,
)
from helios.embeddings import onnx as onnx_module
from helios.errors import ConfigError, MissingDependency

PASSWORD = "How do I reset my password?"
PARAPHRASE = "I forgot my password, how can I change it?"
UNRELATED = "The weather in Paris is sunny"


@pytest.fixture(scope="module")
def embedder() -> OnnxMiniLM:
    return OnnxMiniLM()


async def test_vectors_are_float32_unit_rows_of_384(embedder: OnnxMiniLM) -> None:
    vectors = await embedder.embed([PASSWORD, PARAPHRASE, UNRELATED])

    assert isinstance(embedder, Embedder)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_paraphrases_are_close_and_unrelated_texts_are_not(embedder: OnnxMiniLM) -> None:
    password, paraphrase, unrelated = await embedder.embed([PASSWORD, PARAPHRASE, UNRELATED])

    assert float(password @ paraphrase) > 0.7
    assert float(password @ unrelated) < 0.3


async def test_a_batch_equals_one_text_at_a_time(embedder: OnnxMiniLM) -> None:
    # 40 texts of very different lengths: two batches, rows sorted by length inside them.
    texts = [f"{'word ' * (i % 13)}sentence {i} about indexes and recipes" for i in range(40)]
    texts[7] = ""
    texts[21] = "a very long text " * 120  # past the 256-token truncation

    batched = await embedder.embed(texts)
    one_by_one = np.vstack([await embedder.embed([text]) for text in texts])

    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


async def test_no_texts_give_an_empty_matrix(embedder: OnnxMiniLM) -> None:
    vectors = await embedder.embed([])

    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


async def test_the_model_loads_once_per_file_and_thread_count() -> None:
    first, second = OnnxMiniLM(threads=1), OnnxMiniLM(threads=1)

    assert first.load().session is second.load().session
    assert OnnxMiniLM(threads=2).load().session is not first.load().session


def test_the_packaged_model_has_the_shared_name_and_a_custom_file_another(tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    copy.write_bytes(b"not really a model")

    assert OnnxMiniLM().name == LOCAL_MINILM_INT8 == embedder_name_for(None)
    assert OnnxMiniLM(int8=False).name == LOCAL_MINILM == embedder_name_for(None, int8=False)
    assert OnnxMiniLM(model_path=copy).name == embedder_name_for(copy) != LOCAL_MINILM
    # a file of one's own is run as it is: the int8 build is of the packaged model only
    assert OnnxMiniLM(model_path=copy).name == embedder_name_for(copy, int8=False)
    assert OnnxMiniLM(model_path=copy, name="mine").name == "mine"


def test_a_missing_model_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"embeddings\.model_path: .*nowhere\.onnx"):
        OnnxMiniLM(model_path=tmp_path / "nowhere.onnx")
    with pytest.raises(ConfigError, match=r"embeddings\.tokenizer_path"):
        OnnxMiniLM(tokenizer_path=tmp_path / "tokenizer.json")


def test_a_missing_wheel_says_to_run_make_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_module, "_PACKAGED_MODEL", ("no_such_wheel", "model.onnx", "x"))

    with pytest.raises(ConfigError, match="make install"):
        OnnxMiniLM()


async def test_an_unloadable_model_file_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")

    with pytest.raises(ConfigError, match="cannot load the embedding model"):
        await OnnxMiniLM(model_path=broken).embed(["text"])


def test_a_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "onnxruntime" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    with pytest.raises(MissingDependency, match=r"helios\[embeddings\]") as raised:
        OnnxMiniLM()
    assert raised.value.package == "onnxruntime"
    assert raised.value.extra == "embeddings"


def test_bad_thread_counts_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="threads"):
        OnnxMiniLM(threads=0)
    assert 1 <= onnx_module.default_threads() <= 2


def test_importing_the_contract_and_the_pipeline_loads_no_runtime() -> None:
    # A cached `helios run` must not pay for onnxruntime (nor need numpy) before it knows
    # that it has to embed anything.
    code = (
        "import sys, helios.embeddings, helios.pipeline.evidence\n"
        "loaded = sorted({'numpy', 'onnxruntime', 'tokenizers'} & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
