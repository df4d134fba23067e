"""The int8 build of the packaged MiniLM, built for real (a few seconds, once per folder)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helios.embeddings import LOCAL_MINILM, LOCAL_MINILM_INT8, OnnxMiniLM, int8_build
from helios.embeddings.attention_fusion import fuse_attention
from helios.embeddings.onnx import SHORT_TOKENS
from helios.errors import ConfigError, MissingDependency

TEXTS = [
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Can I cancel before the trip starts?",
    "Can I cancel after the trip starts?",
    "The `iter_files` function iterates over file paths.",
    "The weather in Paris is sunny",
]
TOKENIZER = OnnxMiniLM().tokenizer_path


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8-build")


async def test_the_build_gives_the_packaged_models_vectors_under_another_name(
    build_dir: Path,
) -> None:
    packaged, built = OnnxMiniLM(int8=False), OnnxMiniLM(build_dir=build_dir)

    expected, vectors = await packaged.embed(TEXTS), await built.embed(TEXTS)

    assert built.name == LOCAL_MINILM_INT8 != packaged.name == LOCAL_MINILM
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert ((vectors * expected).sum(axis=1) >= 0.999).all()
    # not the same graph: its vectors differ, which is why it has a name of its own
    assert not np.allclose(vectors, expected, atol=1e-6)
    (built_file,) = build_dir.glob("minilm-l6-*.onnx")
    assert built_file.name.startswith(f"minilm-l6-{int8_build.RECIPE}-")
    assert not list(build_dir.glob(".building-*"))  # the work folder is gone


async def test_a_text_alone_equals_itself_in_a_batch(build_dir: Path) -> None:
    # activations are quantised per token: no batch-mate moves a text's vector, and a short
    # text alone runs on the one-thread session while batches run on two, bit for bit alike
    embedder = OnnxMiniLM(build_dir=build_dir, threads=2)
    batched = await embedder.embed(TEXTS * 3)
    alone = np.vstack([await embedder.embed([text]) for text in TEXTS])

    np.testing.assert_array_equal(batched[: len(TEXTS)], alone)


def test_only_a_short_text_alone_runs_the_build_on_one_thread(build_dir: Path) -> None:
    built = OnnxMiniLM(build_dir=build_dir, threads=2)

    assert built.threads_for(1, SHORT_TOKENS) == 1
    assert built.threads_for(1, SHORT_TOKENS + 1) == 2  # a long text alone: both threads
    assert built.threads_for(2, 8) == 2  # a batch
    assert OnnxMiniLM(int8=False, threads=2).threads_for(1, 8) == 2  # the packaged graph
    assert OnnxMiniLM(build_dir=build_dir, threads=1).threads_for(3, 8) == 1


def test_a_finished_build_is_reused(build_dir: Path) -> None:
    source = OnnxMiniLM().model_path
    first = int8_build.built_model(source, TOKENIZER, build_dir)
    stamp = first.stat().st_mtime_ns

    assert int8_build.built_model(source, TOKENIZER, build_dir) == first
    assert first.stat().st_mtime_ns == stamp


def test_a_new_build_removes_the_builds_of_earlier_recipes(tmp_path: Path) -> None:
    earlier = tmp_path / "minilm-l6-mha-fused-nbits8-b32-r1-8199be6f699a.onnx"
    earlier.write_bytes(b"an earlier recipe's build")
    unrelated = tmp_path / "my-own-model.onnx"
    unrelated.write_bytes(b"not Helios's")

    built = int8_build.built_model(OnnxMiniLM().model_path, TOKENIZER, tmp_path)

    assert sorted(tmp_path.iterdir()) == sorted([built, unrelated])


def test_building_leaves_the_hosts_logging_as_it_was(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    int8_build.built_model(OnnxMiniLM().model_path, TOKENIZER, tmp_path)

    assert root.handlers == handlers
    assert root.level == level


def test_a_build_dir_that_is_a_file_names_the_setting(tmp_path: Path) -> None:
    occupied = tmp_path / "models"
    occupied.write_text("a file where a folder should be")

    with pytest.raises(ConfigError, match=r"embeddings\.build_dir: .*models"):
        int8_build.built_model(OnnxMiniLM().model_path, TOKENIZER, occupied)


@pytest.mark.parametrize("missing", ["onnx", "sympy"])
def test_without_a_build_dependency_the_build_names_the_extra(
    missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = int8_build.importlib.util.find_spec
    monkeypatch.setattr(
        int8_build.importlib.util,
        "find_spec",
        lambda name, *args: None if name == missing else real(name, *args),
    )

    with pytest.raises(MissingDependency, match=rf"{missing}.*embeddings"):
        int8_build.built_model(OnnxMiniLM().model_path, TOKENIZER, tmp_path)


def test_a_source_that_is_no_model_fails_the_build_with_a_config_error(tmp_path: Path) -> None:
    source = tmp_path / "broken.onnx"
    source.write_bytes(b"not a model")

    with pytest.raises(ConfigError, match=r"cannot build the int8 embedding model from .*broken"):
        int8_build.built_model(source, TOKENIZER, tmp_path / "models")
    assert not list((tmp_path / "models").iterdir())  # nothing half-written left behind


def test_each_layers_attention_becomes_one_operator(tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    folded = tmp_path / "folded.onnx"
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    onnxruntime.InferenceSession(str(OnnxMiniLM().model_path), options)
    graph = onnx.load(str(folded))
    before = len(graph.graph.node)

    assert fuse_attention(graph, heads=12, head_size=32) == 6
    ops = Counter(node.op_type for node in graph.graph.node)
    assert ops["MultiHeadAttention"] == 6
    assert ops["Softmax"] == ops["Transpose"] == 0
    assert len(graph.graph.node) < before / 2


def test_a_graph_of_another_shape_is_left_as_it_is() -> None:
    from onnx import TensorProto, helper

    softmax = helper.make_node("Softmax", ["attention_mask"], ["out"])
    graph = helper.make_model(
        helper.make_graph(
            [softmax],
            "not MiniLM",
            [helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
        )
    )
    before = graph.SerializeToString()

    assert fuse_attention(graph, heads=12, head_size=32) == 0
    assert graph.SerializeToString() == before
