"""How often each token occurs in a corpus, counted with the model's own tokenizer.

A token that never occurs in the text a model was trained on cannot have been trained; counting a
corpus the user cares about answers "does this token ever show up in my data?" beside the scores.

The corpus is a list of files or folders: `.txt` (UTF-8), `.jsonl` (one JSON object per line, the
text in one field), `.parquet` (one text column; needs pyarrow) and folders saved by `datasets`'
`save_to_disk` (a `state.json` beside Arrow stream files; needs pyarrow). Folders are walked and
files of other kinds skipped (and reported); a file named on its own without a suffix is read as text.

The work is cut into units of a few MiB (byte ranges of text and JSON-lines files, row groups of
Parquet files, record batches of Arrow files) that a pool of child processes (one per core) reads and
counts (word by word where `word_counts` can do it exactly; else with `tokenizers`' `encode_batch`);
each returns its counts, the parent sums them, reports
progress with an ETA, and terminates the pool on cancel.

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
import multiprocessing as mp
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..child import _main_script_hidden
from ..errors import Cancelled, CorpusError
from ..progress import CancelToken, ProgressFn, no_progress

if TYPE_CHECKING:
    from ..model.loading import LoadedModel

UNIT_BYTES = 2 << 20  # a work unit: small enough for progress and balance, large enough to amortise
DOCUMENT_BYTES = 64 << 10  # text files are handed to the tokenizer in pieces of about this size
TEXT_FIELD = "text"
# A neutral cut in text (see the module docstring): after a single line end between two non-space bytes.
_LINE_CUT = re.compile(rb"[^\s]\n(?=[^\s])")
_KINDS = {".txt": "text", ".jsonl": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class WorkUnit:
    path: str
    kind: str  # text, jsonl, parquet (start..stop row groups), arrow (start..stop record batches)
    start: int
    stop: int
    size: int  # bytes, for progress


@dataclass
class CorpusCounts:
    """Occurrences of every token (one per embedding row) in a corpus, and what was counted."""

    counts: np.ndarray  # int64, one per embedding row
    total: int  # tokens counted
    n_bytes: int  # UTF-8 bytes of text encoded
    documents: int  # texts handed to the tokenizer (lines of JSON, rows, pieces of text files)
    sources: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    skipped: list[str] = field(default_factory=list)  # files in the folders that are no corpus
    method: str = "encode_batch"  # how the workers counted: "words" (word_counts) or "encode_batch"

    def per_million(self) -> np.ndarray:
        return self.counts * (1e6 / max(self.total, 1))

    def rarity(self) -> np.ndarray:
        """`corpus_rarity`: -log10 of the add-one smoothed share per million; higher = rarer, and
        every never-seen token shares the highest value (a log scale, for colouring and ranking)."""
        return -np.log10((self.counts + 1.0) * (1e6 / (self.total + len(self.counts))))

    @property
    def never_seen(self) -> np.ndarray:
        return self.counts == 0

    def meta(self) -> dict[str, Any]:
        return {"total": self.total, "n_bytes": self.n_bytes, "documents": self.documents, "sources": self.sources,
                "seconds": self.seconds, "workers": self.workers, "skipped": self.skipped, "method": self.method}

    @classmethod
    def from_meta(cls, counts: np.ndarray, meta: dict[str, Any]) -> CorpusCounts:
        if counts.dtype.kind not in "iu" or (counts < 0).any():
            raise ValueError("corpus counts must be non-negative integers")
        return cls(np.asarray(counts, dtype=np.int64), int(meta["total"]), int(meta["n_bytes"]),
                   int(meta["documents"]), [str(s) for s in meta.get("sources", [])], float(meta.get("seconds", 0)),
                   int(meta.get("workers", 1)), [str(s) for s in meta.get("skipped", [])],
                   str(meta.get("method", "encode_batch")))

    def summary(self) -> str:
        rate = self.n_bytes / 1e6 / self.seconds if self.seconds else float("nan")
        return (f"{self.total:,} tokens in {self.n_bytes / 1e6:.1f} MB of text ({self.documents:,} documents, "
                f"{len(self.sources)} files) in {self.seconds:.1f} s ({rate:.1f} MB/s on {self.workers} processes, {self.method}); "
                f"{int(self.never_seen.sum()):,} of {len(self.counts):,} tokens never seen")


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


# --- counting ----------------------------------------------------------------------------------------------
_worker: dict[str, Any] = {}


def _init_worker(tokenizer_path: str, n_rows: int, column: str, by_words: bool) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core: no thread pool inside each
    from tokenizers import Tokenizer

    from .word_counts import word_counter

    tokenizer = Tokenizer.from_file(tokenizer_path)
    tokenizer.no_padding()  # a saved truncation setting would silently cut every document
    tokenizer.no_truncation()
    words = word_counter(tokenizer, n_rows) if by_words else None
    _worker.update(tokenizer=tokenizer, words=words, n_rows=n_rows, column=column)


@dataclass(frozen=True)
class UnitCount:
    ids: np.ndarray  # the token ids found (below the matrix size)
    counts: np.ndarray  # their occurrences
    beyond: int  # tokens with ids past the embedding matrix
    n_bytes: int
    documents: int
    size: int  # the unit's planned size, for progress
    method: str  # "words" or "encode_batch"


def count_unit(unit: WorkUnit) -> UnitCount:
    """The token counts of one unit, in a worker."""
    n_rows, words = _worker["n_rows"], _worker["words"]
    documents = unit_documents(unit, _worker["column"], words.cut if words is not None else None)
    if words is not None:
        full = words.count(documents)
    else:
        tokenizer = _worker["tokenizer"]
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # fast: no offsets, same ids
        encodings = encode(documents, add_special_tokens=False) if documents else []
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encodings]) if encodings else np.zeros(0, int)
        full = np.bincount(ids, minlength=n_rows)
    found = np.flatnonzero(full[:n_rows])
    return UnitCount(found, full[found], int(full[n_rows:].sum()), sum(len(d.encode("utf-8")) for d in documents),
                     len(documents), unit.size, "words" if words is not None else "encode_batch")


def _eta(done: int, total: int, elapsed: float) -> str:
    if not done or elapsed <= 0:
        return "estimating"
    rate = done / elapsed
    return f"{done / 1e6:.1f} of {total / 1e6:.1f} MB, {rate / 1e6:.1f} MB/s, ETA {max(total - done, 0) / rate:.0f} s"


def count_corpus(tokenizer_path: Path, n_rows: int, paths: list[Path], column: str = TEXT_FIELD,
                 workers: int | None = None, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None, unit_bytes: int = UNIT_BYTES, by_words: bool = True) -> CorpusCounts:
    """Count every token of the corpus `paths` with the tokenizer at `tokenizer_path` (a tokenizer.json)
    in `workers` child processes (default: one per core); word by word where that is exact
    (`word_counts`) unless `by_words` is False, else with `encode_batch`."""
    cancel = cancel or CancelToken()
    if not Path(tokenizer_path).is_file():
        raise CorpusError(f"no tokenizer.json at {tokenizer_path}: the model's fast tokenizer is needed")
    units, files, skipped = plan_units([Path(p) for p in paths], column, unit_bytes)
    workers = max(1, min(workers or os.cpu_count() or 1, len(units) or 1))
    counts = np.zeros(n_rows, dtype=np.int64)
    planned = sum(u.size for u in units) or 1
    done_size = n_bytes = documents = beyond = 0
    methods: set[str] = set()
    start = time.perf_counter()
    progress(0.0, f"Counting tokens: starting {workers} processes")
    with _main_script_hidden():
        pool = mp.get_context("spawn").Pool(workers, _init_worker, (str(tokenizer_path), n_rows, column, by_words))
    try:
        results = pool.imap_unordered(count_unit, units)
        for _ in units:
            while True:
                if cancel.cancelled:
                    raise Cancelled("cancelled by the user")
                try:
                    part: UnitCount = results.next(timeout=0.1)
                    break
                except mp.TimeoutError:
                    continue
            counts[part.ids] += part.counts
            beyond, n_bytes, documents = beyond + part.beyond, n_bytes + part.n_bytes, documents + part.documents
            methods.add(part.method)
            done_size += part.size
            progress(done_size / planned,
                     f"Counting tokens: {_eta(done_size, planned, time.perf_counter() - start)}")
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    seconds = round(time.perf_counter() - start, 3)
    if beyond:
        skipped.append(f"{beyond} tokens with ids beyond the {n_rows} embedding rows were not counted")
    return CorpusCounts(counts, int(counts.sum()), n_bytes, documents, files, seconds, workers, skipped,
                        "+".join(sorted(methods)) or "none")


def tokenizer_file(model: LoadedModel) -> Path:
    """The model's tokenizer as a tokenizer.json the workers can read: the folder's own, or the fast
    tokenizer written once into the cache (for folders with only a vocabulary file)."""
    from ..model.sources import cache_root

    own = model.folder / "tokenizer.json"
    if own.is_file():
        return own
    path = cache_root() / "tokenizers" / f"{model.fingerprint}.json"
    if not path.is_file():
        from ..store.files import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w", encoding="utf-8") as handle:
            handle.write(model.tokenizer.to_str())
    return path


def count_model_corpus(model: LoadedModel, paths: list[Path], column: str = TEXT_FIELD, workers: int | None = None,
                       progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                       by_words: bool = True) -> CorpusCounts:
    """`count_corpus` with a loaded model's tokenizer, one count per embedding row."""
    return count_corpus(tokenizer_file(model), model.input_embeddings.shape[0], paths, column, workers,
                        progress, cancel, by_words=by_words)
