"""Where a corpus's text comes from: finding its files, cutting them into work units, and reading the
texts of one unit (in a worker process).

A corpus is a list of files or folders: `.txt` (UTF-8), `.jsonl` (one JSON object per line, the text
in one field), `.parquet` (one text column; needs pyarrow) and folders saved by `datasets`'
`save_to_disk` (a `state.json` beside Arrow stream files; needs pyarrow). Folders are walked (links
to folders inside them are not followed) and files of other kinds skipped and reported; a file named
on its own without a suffix is read as text. Units are byte ranges of text and JSON-lines files, row
groups of Parquet files and record batches of Arrow files.

Text files are cut only where cutting changes no token: after a single line end between two non-space
characters (pre-tokenizers end a token with the line end and start afresh after it) and, for the word
counters, where each says (`word_counts`: before a single space no vocabulary entry spans). So the
counts equal those of encoding each file whole: the tests check it on real text cut every 2 KiB for
the SmolLM2, Gemma-3 and MiniLM tokenizers. (A text with no such place is read as one piece.) One
kind is not exact: a tokenizer that prepends a space mark to every text it encodes (Llama-2's Metaspace
with prepend_scheme "first") sees one more mark per cut of a text file, one per 64 KiB at most.
JSON lines, Parquet rows and dataset rows are whole documents and never cut."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CorpusError

UNIT_BYTES = 2 << 20  # a work unit: small enough for progress and balance, large enough to amortise
DOCUMENT_BYTES = 64 << 10  # text files are handed to the tokenizer in pieces of about this size
TEXT_FIELD = "text"
# A neutral cut in text: after a single line end between two non-space bytes.
_LINE_CUT = re.compile(rb"[^\s]\n(?=[^\s])")
_KINDS = {".txt": "text", ".jsonl": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class WorkUnit:
    path: str
    kind: str  # text, jsonl, parquet (start..stop row groups), arrow (start..stop record batches)
    start: int
    stop: int
    size: int  # bytes, for progress


# --- finding the corpus ----------------------------------------------------------------------------
def _pyarrow(what: str) -> Any:
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise CorpusError(f"reading {what} needs pyarrow, which is not installed: pip install pyarrow") from None
    return pyarrow


def _regular(path: Path) -> Path:
    if not path.exists():
        raise CorpusError(f"no such file or folder: {path}")
    if not path.is_file():
        raise CorpusError(f"{path} is not a regular file (a pipe or device?); refusing to read it")
    return path


def _dataset_arrow_files(folder: Path) -> list[Path]:
    """The Arrow files of a `datasets.save_to_disk` folder, in the order `state.json` lists them."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        names = [entry["filename"] for entry in state.get("_data_files", [])]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CorpusError(f"{folder} looks like a saved dataset but its state.json is unreadable: {exc}") from None
    return [_regular(folder / name) for name in names] or sorted(folder.glob("*.arrow"))


def _walk(path: Path, named: bool, skipped: list[str]) -> Iterator[tuple[Path, str]]:
    if path.is_dir() and path.is_symlink() and not named:  # a link inside a folder may loop: not followed
        skipped.append(str(path))
        return
    if path.is_dir():
        if (path / "state.json").is_file():
            yield from ((p, "arrow") for p in _dataset_arrow_files(path))
            return
        for child in sorted(path.iterdir()):
            yield from _walk(child, False, skipped)
        return
    kind = _KINDS.get(path.suffix.lower())
    if named and kind is None and not path.suffix:
        kind = "text"  # a file named on its own without a suffix (LICENSE, README) is read as text
    if named:
        _regular(path)
        if kind is None:
            raise CorpusError(f"{path.name}: not a corpus file (expected .txt, .jsonl, .parquet or a saved "
                              f"dataset folder)")
    elif kind is None or not path.is_file():
        skipped.append(str(path))
        return
    yield path, kind


def plan_units(paths: list[Path], column: str = TEXT_FIELD,
               unit_bytes: int = UNIT_BYTES) -> tuple[list[WorkUnit], list[str], list[str]]:
    """Cut the corpus into work units; returns (units, the files read, the files skipped)."""
    if not paths:
        raise CorpusError("no corpus given: name at least one file or folder")
    units: list[WorkUnit] = []
    files: list[str] = []
    skipped: list[str] = []
    for given in paths:
        given = Path(given)
        if not given.exists():
            raise CorpusError(f"no such file or folder: {given}")
        for path, kind in _walk(given, True, skipped):
            files.append(str(path))
            units.extend(_file_units(path, kind, column, unit_bytes))
    if not files:
        raise CorpusError(f"no .txt, .jsonl, .parquet or saved dataset found in {', '.join(map(str, paths))}")
    return units, files, skipped


def _file_units(path: Path, kind: str, column: str, unit_bytes: int) -> list[WorkUnit]:
    if kind in ("text", "jsonl"):
        size = path.stat().st_size
        return [WorkUnit(str(path), kind, s, min(s + unit_bytes, size), min(unit_bytes, size - s))
                for s in range(0, size, unit_bytes)]
    pa = _pyarrow(f"{path.name}")
    try:
        if kind == "parquet":
            meta = pa.parquet.ParquetFile(str(path))
            _check_column(meta.schema_arrow.names, column, path)
            return [WorkUnit(str(path), kind, g, g + 1, meta.metadata.row_group(g).total_byte_size)
                    for g in range(meta.metadata.num_row_groups)]
        with pa.ipc.open_stream(pa.memory_map(str(path))) as reader:
            _check_column(reader.schema.names, column, path)
            sizes = [batch.nbytes for batch in reader]
    except CorpusError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise CorpusError(f"{path.name} is not a readable {kind} file (corrupt or truncated?): "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    units, start, acc = [], 0, 0
    for i, size in enumerate(sizes):
        acc += size
        if acc >= unit_bytes or i == len(sizes) - 1:
            units.append(WorkUnit(str(path), kind, start, i + 1, acc))
            start, acc = i + 1, 0
    return units


def _check_column(names: list[str], column: str, path: Path) -> None:
    if column not in names:
        raise CorpusError(f"{path.name} has no text column '{column}' (it has {', '.join(names) or 'none'}); "
                          f"name the column to read")


# --- reading one unit (in a worker) ----------------------------------------------------------------------
def _cut_at_or_after(handle: Any, pos: int, cut: re.Pattern) -> int:
    """The first neutral cut position >= pos in an open binary file (its size when there is none)."""
    if pos == 0:
        return 0
    base = max(pos - 2, 0)
    handle.seek(base)
    buffer, searched = b"", 0
    while True:
        block = handle.read(1 << 16)
        buffer += block
        for match in cut.finditer(buffer, max(searched - 2, 0)):
            if base + match.end() >= pos:
                return base + match.end()
        if not block:
            return base + len(buffer)
        searched = len(buffer)


def _line_at_or_after(handle: Any, pos: int) -> int:
    """The start of the first line that begins at or after pos."""
    if pos == 0:
        return 0
    handle.seek(pos - 1)
    handle.readline()
    return handle.tell()


def _text_documents(data: bytes, cut: re.Pattern) -> Iterator[str]:
    start = 0
    while start < len(data):
        match = cut.search(data, start + DOCUMENT_BYTES) if len(data) - start > DOCUMENT_BYTES else None
        stop = match.end() if match else len(data)
        yield data[start:stop].decode("utf-8", errors="replace")
        start = stop


def _jsonl_documents(data: bytes, path: str, offset: int, column: str) -> Iterator[str]:
    for number, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise CorpusError(f"{Path(path).name}: line {number + 1} after byte {offset} is not JSON: {exc}") from None
        text = record.get(column) if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise CorpusError(f"{Path(path).name}: line {number + 1} after byte {offset} has no text field "
                              f"'{column}'")
        yield text


def unit_documents(unit: WorkUnit, column: str = TEXT_FIELD, cut: re.Pattern | None = None) -> list[str]:
    """The texts of one work unit; text files are cut where `cut` matches (default: after a single line
    end between non-space bytes; the word counters bring their own, see `word_counts`)."""
    if unit.kind in ("text", "jsonl"):
        cut = cut or _LINE_CUT
        with open(unit.path, "rb") as handle:
            if unit.kind == "text":
                start, stop = _cut_at_or_after(handle, unit.start, cut), _cut_at_or_after(handle, unit.stop, cut)
            else:
                start, stop = _line_at_or_after(handle, unit.start), _line_at_or_after(handle, unit.stop)
            handle.seek(start)
            data = handle.read(max(stop - start, 0))
        if unit.kind == "text":
            return list(_text_documents(data, cut))
        return list(_jsonl_documents(data, unit.path, start, column))
    pa = _pyarrow(Path(unit.path).name)
    try:
        if unit.kind == "parquet":
            values = pa.parquet.ParquetFile(unit.path).read_row_group(unit.start, columns=[column]).column(0)
        else:
            with pa.ipc.open_stream(pa.memory_map(unit.path)) as reader:
                batches = [b.column(column) for i, b in enumerate(reader) if unit.start <= i < unit.stop]
            values = pa.chunked_array(batches)
    except (OSError, pa.ArrowException) as exc:
        raise CorpusError(f"{Path(unit.path).name} cannot be read (corrupt?): {str(exc).splitlines()[0]}") from None
    return [v for v in values.to_pylist() if isinstance(v, str)]
