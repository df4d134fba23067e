"""Evidence: loading documents, chunking them, ranking passages, and the two cache levels."""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from helios.cache.backends.base import CacheBackend, EntryInfo
from helios.cache.backends.memory import MemoryBackend
from helios.embeddings.base import LOCAL_MINILM_INT8, Embedder
from helios.errors import CacheBackendError, ConfigError, InputError
from helios.pipeline.documents import Chunk, Document, chunk_document, load_documents
from helios.pipeline.evidence import Evidence, EvidenceGatherer, Passage

LIMIT = 10_000


# -- doubles --------------------------------------------------------------------------------
class BagOfWords(Embedder):
    """Deterministic and instant: each word adds 1 to a hashed dimension, then unit length."""

    name = "bag-of-words"
    dim = 256

    def __init__(self) -> None:
        self.embedded: list[str] = []
        self.closed = False

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.embedded.extend(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        unit: NDArray[np.float32] = (vectors / norms).astype(np.float32)
        return unit

    async def aclose(self) -> None:
        self.closed = True


class Factory:
    """Counts the embedders it makes: a cache hit must make none."""

    def __init__(self) -> None:
        self.made: list[BagOfWords] = []

    def __call__(self) -> BagOfWords:
        self.made.append(BagOfWords())
        return self.made[-1]

    @property
    def embedded(self) -> list[str]:
        return [text for embedder in self.made for text in embedder.embedded]


class BrokenBackend(CacheBackend):
    """Every operation fails, as a Redis that went away would."""

    name = "broken"

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def get(self, key: str) -> bytes | None:
        raise self.error

    async def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        raise self.error

    async def delete(self, key: str) -> bool:
        raise self.error

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        raise self.error
        yield prefix  # pragma: no cover - makes this an async generator

    async def count(self, prefix: str = "") -> int:
        raise self.error

    async def info(self, key: str) -> EntryInfo | None:
        raise self.error


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def doc(source: str, text: str) -> Document:
    return Document(Path(source), text, hashlib.sha256(text.encode()).hexdigest())


DATABASE = doc(
    "docs/database.md",
    "# Indexes\n\nA B-tree index keeps keys sorted so that range scans and lookups need "
    "logarithmic page reads.\n\nComposite indexes serve queries on their leading columns.\n",
)
COOKING = doc(
    "docs/cooking.md",
    "# Pasta\n\nBoil the pasta in salted water and stir the sauce with garlic and basil.\n",
)
DEPLOY = doc("docs/deploy.txt", "Blue green deployment switches traffic between two fleets.\n")


def gatherer(
    factory: Factory, backend: CacheBackend | None, **settings: object
) -> EvidenceGatherer:
    return EvidenceGatherer(factory, backend, embedder_name=BagOfWords.name, **settings)  # type: ignore[arg-type]


# -- load_documents -------------------------------------------------------------------------
async def test_files_load_whatever_their_suffix(tmp_path: Path) -> None:
    notes = tmp_path / "notes.log"
    notes.write_bytes("\ufeffline one\nline two\n".encode())

    (loaded,) = await load_documents([notes], max_document_bytes=LIMIT)

    assert loaded.path == notes
    assert loaded.text == "line one\nline two\n"  # the byte-order mark is dropped
    assert loaded.sha256 == hashlib.sha256(notes.read_bytes()).hexdigest()


async def test_folders_are_walked_in_order_with_suffixes_and_hidden_entries_skipped(
    tmp_path: Path,
) -> None:
    for name in ["b.md", "a.txt", "sub/c.rst", "sub/deeper/d.markdown", "Z.MD", "image.png",
                 ".hidden.md", ".git/config.md", "sub/.cache/e.md"]:  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"text of {name}\n")

    loaded = await load_documents([tmp_path], max_document_bytes=LIMIT)

    relative = [document.path.relative_to(tmp_path).as_posix() for document in loaded]
    assert relative == ["Z.MD", "a.txt", "b.md", "sub/c.rst", "sub/deeper/d.markdown"]
    only_text = await load_documents([tmp_path], max_document_bytes=LIMIT, suffixes=[".txt"])
    assert [document.path.name for document in only_text] == ["a.txt"]


async def test_a_file_named_twice_loads_once(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("alpha\n")

    loaded = await load_documents([tmp_path, tmp_path / "a.md"], max_document_bytes=LIMIT)

    assert len(loaded) == 1


async def test_a_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nowhere\.md: no such file or folder"):
        await load_documents([tmp_path / "nowhere.md"], max_document_bytes=LIMIT)


async def test_a_folder_without_matching_files_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG")

    with pytest.raises(InputError, match=re.escape(str(tmp_path)) + ".*no .*md"):
        await load_documents([tmp_path], max_document_bytes=LIMIT)


async def test_an_unreadable_file_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("classified\n")
    real_open = Path.open

    def deny(self: Path, *args: object, **kwargs: object) -> object:
        # The suite may run as root, for whom chmod 000 changes nothing.
        if self == secret:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", deny)

    with pytest.raises(InputError, match=r"secret\.md: cannot read the file: permission denied"):
        await load_documents([secret], max_document_bytes=LIMIT)


async def test_binary_files_are_input_errors_that_say_why(tmp_path: Path) -> None:
    with_nul = tmp_path / "blob.md"
    with_nul.write_bytes(b"text\x00more")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))

    with pytest.raises(InputError, match=r"blob\.md: a binary file \(it contains NUL bytes\)"):
        await load_documents([with_nul], max_document_bytes=LIMIT)
    with pytest.raises(InputError, match=r"latin1\.txt: .*not UTF-8 text \(byte 0xe9 at offset 3"):
        await load_documents([latin1], max_document_bytes=LIMIT)


async def test_a_file_over_the_limit_names_size_limit_and_setting(tmp_path: Path) -> None:
    big = tmp_path / "big.md"
    big.write_text("x" * 2_000)

    with pytest.raises(InputError) as raised:
        await load_documents([big], max_document_bytes=1_000)

    message = str(raised.value)
    assert "big.md" in message
    assert "2,000 bytes" in message
    assert "1,000 bytes" in message
    assert "orchestration.evidence.max_document_bytes" in message


async def test_a_fifo_is_refused_instead_of_read_forever(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)

    with pytest.raises(InputError, match=r"pipe\.md: not a regular file"):
        await load_documents([fifo], max_document_bytes=LIMIT)


# -- chunking -------------------------------------------------------------------------------
def spans(chunks: list[Chunk]) -> list[tuple[int, int]]:
    return [(chunk.start_line, chunk.end_line) for chunk in chunks]


def test_short_paragraphs_merge_and_keep_their_line_span() -> None:
    text = "one two three\nfour five\n\nsix seven\n\n\neight nine ten eleven\n"

    chunks = chunk_document(doc("a.md", text), chunk_words=8)

    assert spans(chunks) == [(1, 4), (7, 7)]
    assert chunks[0].text == "one two three\nfour five\n\nsix seven"
    assert chunks[0].source == "a.md"


def test_headings_start_a_chunk_and_stay_with_their_text() -> None:
    text = "intro words\n\n# First\n\nalpha beta\n\n## Second\ngamma delta\n"

    chunks = chunk_document(doc("a.md", text), chunk_words=50)

    assert spans(chunks) == [(1, 1), (3, 5), (7, 8)]
    assert chunks[1].text == "# First\n\nalpha beta"


def test_a_heading_line_keeps_its_section_text_even_past_the_limit() -> None:
    text = "# Title\n\n" + " ".join(["word"] * 10) + "\n"

    chunks = chunk_document(doc("a.md", text), chunk_words=10)

    assert spans(chunks) == [(1, 3)]


def test_hashes_inside_a_code_fence_are_not_headings() -> None:
    text = "```sh\n# install\nmake install\n# test\nmake test\n```\n"

    assert spans(chunk_document(doc("a.md", text), chunk_words=50)) == [(1, 6)]


def test_long_paragraphs_split_at_lines_and_long_lines_between_words() -> None:
    lines = [" ".join(f"w{line}x{i}" for i in range(4)) for line in range(1, 6)]
    long_line = " ".join(f"long{i}" for i in range(25))
    text = "\n".join(lines) + "\n" + long_line + "\n"

    chunks = chunk_document(doc("a.md", text), chunk_words=10)

    assert spans(chunks) == [(1, 2), (3, 4), (5, 5), (6, 6), (6, 6), (6, 6)]
    assert chunks[0].text == f"{lines[0]}\n{lines[1]}"
    assert chunks[3].text == " ".join(f"long{i}" for i in range(10))
    assert chunks[5].text == " ".join(f"long{i}" for i in range(20, 25))
    assert all(len(chunk.text.split()) <= 10 for chunk in chunks)


def test_windows_line_ends_count_lines_the_same() -> None:
    text = "first para\r\n\r\nsecond para\r\n"

    assert spans(chunk_document(doc("a.md", text), chunk_words=2)) == [(1, 1), (3, 3)]


def test_empty_and_blank_documents_give_no_chunks() -> None:
    assert chunk_document(doc("a.md", ""), chunk_words=10) == []
    assert chunk_document(doc("a.md", "\n  \n\t\n"), chunk_words=10) == []


# -- passages and evidence ------------------------------------------------------------------
def test_passages_cite_their_lines_and_evidence_renders_a_prompt_block() -> None:
    passages = (
        Passage("E1", "docs/arch.md", 12, 18, "Services own their data.", 0.8),
        Passage("E2", "notes.txt", 3, 3, "One line.", 0.5),
    )
    evidence = Evidence(passages, 2, 9, False, 9, 0.01)

    assert passages[0].citation == "docs/arch.md:12-18"
    assert passages[1].citation == "notes.txt:3"
    assert evidence.ids == {"E1", "E2"}
    assert not evidence.absent
    assert evidence.as_prompt_block() == (
        "[E1] (docs/arch.md:12-18)\nServices own their data.\n\n[E2] (notes.txt:3)\nOne line."
    )
    assert Evidence((), 0, 0, False, 0, 0.0).absent


# -- gathering ------------------------------------------------------------------------------
async def test_the_passages_that_share_the_goals_words_rank_first() -> None:
    factory = Factory()

    evidence = await gatherer(factory, MemoryBackend(), top_k=2).gather(
        "which b-tree index serves range scans", [COOKING, DATABASE, DEPLOY]
    )

    assert [p.id for p in evidence.passages] == ["E1", "E2"]
    assert evidence.passages[0].source == "docs/database.md"
    assert evidence.passages[0].start_line == 1
    assert evidence.passages[0].score >= evidence.passages[1].score
    assert (evidence.documents, evidence.chunks) == (3, 3)
    assert evidence.embedded_chunks == 3
    assert not evidence.from_cache


async def test_no_documents_give_absent_evidence_without_an_embedder() -> None:
    factory = Factory()
    gather = gatherer(factory, MemoryBackend())

    nothing = await gather.gather("goal", [])
    empty = await gather.gather("goal", [doc("empty.md", "\n\n")])

    assert nothing.absent and nothing.documents == 0
    assert empty.absent and (empty.documents, empty.chunks) == (1, 0)
    assert factory.made == []


async def test_an_empty_goal_is_an_input_error() -> None:
    with pytest.raises(InputError, match="goal"):
        await gatherer(Factory(), None).gather("  ", [DATABASE])


async def test_a_repeated_gather_is_a_cache_hit_that_creates_no_embedder() -> None:
    backend = MemoryBackend()
    first = await gatherer(Factory(), backend).gather("b-tree index", [DATABASE, COOKING])
    factory = Factory()

    # A new gatherer, as a second `helios run` would build, in another document order.
    again = await gatherer(factory, backend).gather("b-tree index", [COOKING, DATABASE])

    assert factory.made == []
    assert again.from_cache
    assert again.embedded_chunks == 0
    assert again.passages == first.passages
    assert (again.documents, again.chunks) == (first.documents, first.chunks)


async def test_a_new_goal_embeds_only_the_goal() -> None:
    backend, factory = MemoryBackend(), Factory()
    await gatherer(Factory(), backend).gather("b-tree index", [DATABASE, COOKING])

    evidence = await gatherer(factory, backend).gather("pasta sauce", [DATABASE, COOKING])

    assert not evidence.from_cache
    assert evidence.embedded_chunks == 0
    assert factory.embedded == ["pasta sauce"]
    assert evidence.passages[0].source == "docs/cooking.md"


async def test_a_changed_document_re_embeds_only_itself() -> None:
    backend, factory = MemoryBackend(), Factory()
    await gatherer(Factory(), backend).gather("b-tree index", [DATABASE, COOKING, DEPLOY])
    edited = doc("docs/cooking.md", COOKING.text + "\nServe with parmesan.\n")

    evidence = await gatherer(factory, backend).gather("b-tree index", [DATABASE, edited, DEPLOY])

    expected = chunk_document(edited, chunk_words=120)
    assert evidence.embedded_chunks == len(expected) == 1
    assert factory.embedded == [expected[0].text, "b-tree index"]


async def test_a_moved_file_reuses_its_vectors_but_cites_its_new_path() -> None:
    backend, factory = MemoryBackend(), Factory()
    await gatherer(Factory(), backend).gather("b-tree index", [DATABASE])
    moved = Document(Path("archive/database.md"), DATABASE.text, DATABASE.sha256)

    evidence = await gatherer(factory, backend).gather("b-tree index", [moved])

    assert not evidence.from_cache
    assert evidence.embedded_chunks == 0
    assert evidence.passages[0].citation.startswith("archive/database.md:")


async def test_identical_files_are_embedded_once() -> None:
    factory = Factory()
    copy = Document(Path("docs/copy.md"), DATABASE.text, DATABASE.sha256)

    evidence = await gatherer(factory, None).gather("b-tree index", [DATABASE, copy])

    assert evidence.chunks == 2
    assert evidence.embedded_chunks == 1
    assert {p.source for p in evidence.passages} == {"docs/copy.md", "docs/database.md"}


async def test_results_expire_after_ttl_and_vectors_outlive_them() -> None:
    clock = Clock()
    backend = MemoryBackend(clock=clock)
    settings = {"ttl_s": 60.0, "embeddings_ttl_s": 3600.0}
    await gatherer(Factory(), backend, **settings).gather("b-tree index", [DATABASE])

    clock.now += 30
    fresh = await gatherer(Factory(), backend, **settings).gather("b-tree index", [DATABASE])
    clock.now += 61
    expired = await gatherer(Factory(), backend, **settings).gather("b-tree index", [DATABASE])
    clock.now += 3600
    cold = await gatherer(Factory(), backend, **settings).gather("b-tree index", [DATABASE])

    assert fresh.from_cache
    assert not expired.from_cache and expired.embedded_chunks == 0
    assert not cold.from_cache and cold.embedded_chunks == 1


@pytest.mark.parametrize("error", [CacheBackendError("redis is gone"), RuntimeError("bug")])
async def test_a_failing_backend_is_a_miss_not_a_failure(error: Exception) -> None:
    factory = Factory()
    gather = gatherer(factory, BrokenBackend(error))

    first = await gather.gather("b-tree index", [DATABASE, COOKING])
    second = await gather.gather("b-tree index", [DATABASE, COOKING])

    assert first.passages == second.passages
    assert first.passages[0].source == "docs/database.md"
    assert not second.from_cache and second.embedded_chunks == 2
    assert gather.errors == 12  # per gather: result read, 2 vector reads and writes, result write
    assert len(factory.made) == 1  # one embedder per gatherer, reused


async def test_unreadable_cache_values_are_misses() -> None:
    backend = MemoryBackend()
    gather = gatherer(Factory(), backend)
    await gather.gather("b-tree index", [DATABASE])
    async for key in backend.scan():
        await backend.set(key, b"\x00garbage", ttl_s=None)

    evidence = await gather.gather("b-tree index", [DATABASE])

    assert not evidence.from_cache
    assert evidence.embedded_chunks == 1
    assert gather.errors == 2


async def test_top_k_and_min_score_limit_the_passages() -> None:
    documents = [doc(f"docs/{i}.md", f"index number {i}\n") for i in range(10)]

    top3 = await gatherer(Factory(), None, top_k=3).gather("index", documents)
    strict = await gatherer(Factory(), None, min_score=0.99).gather("index", documents)

    assert [p.id for p in top3.passages] == ["E1", "E2", "E3"]
    # Equal scores keep source order: the same inputs always give the same E-numbers.
    assert [p.source for p in top3.passages] == ["docs/0.md", "docs/1.md", "docs/2.md"]
    assert strict.absent and strict.chunks == 10


async def test_an_embedder_named_otherwise_than_the_cache_key_is_refused() -> None:
    gather = EvidenceGatherer(Factory(), MemoryBackend())  # keyed on the local MiniLM

    assert gather.embedder_name == LOCAL_MINILM_INT8
    with pytest.raises(ConfigError, match="embedder_name='bag-of-words'"):
        await gather.gather("b-tree index", [DATABASE])


async def test_an_embedder_class_as_factory_names_the_cache() -> None:
    assert EvidenceGatherer(BagOfWords, None).embedder_name == "bag-of-words"


async def test_aclose_closes_the_embedder() -> None:
    factory = Factory()
    gather = gatherer(factory, None)
    await gather.gather("b-tree index", [DATABASE])

    await gather.aclose()

    assert factory.made[0].closed


# -- end to end, real model -----------------------------------------------------------------
async def test_real_embeddings_find_the_database_passage(tmp_path: Path) -> None:
    from helios.embeddings.onnx import OnnxMiniLM

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "database.md").write_text(
        "# Storage engine\n\nRows live in 8 KB heap pages.\n\n"
        "# Indexes\n\nA B-tree index keeps keys sorted in a balanced tree, so a lookup or a "
        "range scan reads a logarithmic number of pages instead of the whole table.\n"
    )
    (tmp_path / "docs" / "cooking.md").write_text(
        "# Risotto\n\nToast the rice, add warm stock one ladle at a time and stir until creamy."
        "\n\n# Bread\n\nKnead the dough for ten minutes and let it rise overnight.\n"
    )
    documents = await load_documents([tmp_path / "docs"], max_document_bytes=LIMIT)
    backend = MemoryBackend()
    made: list[OnnxMiniLM] = []

    def factory() -> OnnxMiniLM:
        made.append(OnnxMiniLM())
        return made[-1]

    goal = "How do B-tree indexes speed up queries?"
    evidence = await EvidenceGatherer(factory, backend, top_k=3).gather(goal, documents)
    again = await EvidenceGatherer(factory, backend, top_k=3).gather(goal, documents)

    best = evidence.passages[0]
    assert best.id == "E1"
    assert best.source.endswith("docs/database.md")
    assert "B-tree" in best.text
    assert (best.start_line, best.end_line) == (5, 7)
    assert best.score > evidence.passages[1].score
    assert evidence.chunks == 4 and evidence.embedded_chunks == 4
    assert again.from_cache and again.passages == evidence.passages
    assert len(made) == 1
