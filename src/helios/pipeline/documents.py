"""Documents for the dialectic pipeline: loading ``--docs`` paths and chunking them.

A file is loaded whatever its suffix; a folder is walked for text and Markdown files. Bad
input is an :class:`~helios.errors.InputError` naming the path: missing, unreadable,
binary, or larger than ``orchestration.evidence.max_document_bytes``. Chunks keep their
source and 1-based line span, so that a passage can be cited as ``path:12-18``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from helios.errors import ConfigError, InputError

DEFAULT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
LIMIT_SETTING = "orchestration.evidence.max_document_bytes"
_HEADING = re.compile(r" {0,3}#{1,6}(\s|$)")
_FENCE = ("```", "~~~")


# -- documents ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Document:
    path: Path
    text: str
    sha256: str
    """Of the file's bytes: the document's identity in the caches."""

    @property
    def source(self) -> str:
        """The path as the user gave it (folder walks keep the folder as prefix)."""
        return self.path.as_posix()


async def load_documents(
    paths: Sequence[Path],
    *,
    max_document_bytes: int,
    suffixes: Sequence[str] = DEFAULT_SUFFIXES,
) -> list[Document]:
    """Read files, and folders recursively (files with ``suffixes``, hidden ones skipped).

    A file named directly is read whatever its suffix. Anything unusable (missing, not
    readable, binary, not UTF-8, over the limit, an empty folder) raises InputError.
    """
    wanted = tuple(suffix.lower() for suffix in suffixes)
    return await asyncio.to_thread(_load_documents, list(paths), max_document_bytes, wanted)


def _load_documents(paths: list[Path], limit: int, suffixes: tuple[str, ...]) -> list[Document]:
    documents: list[Document] = []
    seen: set[Path] = set()
    for path in paths:
        for file in _files(path, suffixes):
            identity = file.resolve()
            if identity not in seen:  # a folder and a file inside it: read it once
                seen.add(identity)
                documents.append(_read(file, limit))
    return documents


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_dir():
        found = sorted(_walk(path, suffixes), key=lambda file: file.relative_to(path).parts)
        if not found:
            raise InputError(f"{path}: the folder holds no {'/'.join(suffixes)} files")
        return found
    if path.is_file():
        return [path]
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    raise InputError(f"{path}: not a regular file or folder")


def _walk(folder: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    def fail(error: OSError) -> None:
        raise InputError(f"{error.filename}: cannot read the folder: {error.strerror}")

    for root, folders, names in os.walk(folder, onerror=fail):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes:
                yield Path(root, name)


def _read(path: Path, limit: int) -> Document:
    try:
        size = path.stat().st_size
        if size <= limit:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)  # the file may have grown since stat
            size = len(data)
    except PermissionError as exc:
        raise InputError(f"{path}: cannot read the file: permission denied") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    if size > limit:
        raise InputError(
            f"{path}: the file is {size:,} bytes, over the limit of {limit:,} bytes "
            f"({LIMIT_SETTING})"
        )
    if b"\0" in data:
        raise InputError(f"{path}: a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: a binary file or another encoding, not UTF-8 text (byte "
            f"0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc
    return Document(path=path, text=text, sha256=hashlib.sha256(data).hexdigest())


# -- chunking -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Chunk:
    source: str
    start_line: int
    end_line: int
    """1-based and inclusive, in the document."""
    text: str


@dataclass(slots=True)
class _Piece:
    """At most chunk_words words of one paragraph: a whole one, some lines, or part of one."""

    start: int
    end: int
    text: str
    words: int
    paragraph: int
    heading: bool  # starts a Markdown section: never merged into the chunk before it


def chunk_document(document: Document, *, chunk_words: int) -> list[Chunk]:
    """Paragraphs merged up to about ``chunk_words`` words; a heading starts a new chunk.

    An over-long paragraph splits at line ends, an over-long line between words. A chunk
    that is only a heading line takes the next piece whatever its size, so that a section
    title stays with its text.
    """
    if chunk_words < 1:
        raise ConfigError(f"chunk_words must be at least 1, not {chunk_words}")
    chunks: list[Chunk] = []
    current: list[_Piece] = []
    words = 0
    for piece in _pieces(document.text, chunk_words):
        title_only = len(current) == 1 and current[0].heading and current[0].start == current[0].end
        if current and (piece.heading or (words + piece.words > chunk_words and not title_only)):
            chunks.append(_join(document.source, current))
            current, words = [], 0
        current.append(piece)
        words += piece.words
    if current:
        chunks.append(_join(document.source, current))
    return chunks


def _join(source: str, pieces: list[_Piece]) -> Chunk:
    text = pieces[0].text
    for before, piece in itertools.pairwise(pieces):
        text += ("\n" if piece.paragraph == before.paragraph else "\n\n") + piece.text
    return Chunk(source, pieces[0].start, pieces[-1].end, text)


def _pieces(text: str, limit: int) -> Iterator[_Piece]:
    for index, (start, lines, heading) in enumerate(_paragraphs(text)):
        counts = [len(line.split()) for line in lines]
        group: list[str] = []
        group_start = group_words = 0
        first = heading
        for number, (line, count) in enumerate(zip(lines, counts, strict=True), start):
            if group and group_words + count > limit:
                yield _Piece(group_start, number - 1, "\n".join(group), group_words, index, first)
                group, group_words, first = [], 0, False
            if count > limit:
                tokens = line.split()
                for at in range(0, len(tokens), limit):
                    part = tokens[at : at + limit]
                    yield _Piece(number, number, " ".join(part), len(part), index, first)
                    first = False
                continue
            if not group:
                group_start = number
            group.append(line)
            group_words += count
        if group:
            end = start + len(lines) - 1
            yield _Piece(group_start, end, "\n".join(group), group_words, index, first)


def _paragraphs(text: str) -> Iterator[tuple[int, list[str], bool]]:
    """(first line number, lines, starts with a heading) for each run of non-blank lines."""
    lines: list[str] = []
    start, heading, fenced = 0, False, False
    for number, line in enumerate(text.splitlines(), 1):
        is_heading = not fenced and _HEADING.match(line) is not None  # '#' in code: a comment
        if line.lstrip().startswith(_FENCE):
            fenced = not fenced
        if lines and (not line.strip() or is_heading):
            yield start, lines, heading
            lines = []
        if line.strip():
            if not lines:
                start, heading = number, is_heading
            lines.append(line)
    if lines:
        yield start, lines, heading
