"""How often each token occurs in a corpus, counted with the model's own tokenizer.

A token that never occurs in the text a model was trained on cannot have been trained; counting a
corpus the user cares about answers "does this token ever show up in my data?" beside the scores.

The corpus (see `corpus_sources` for the kinds of files and how they are cut) is counted unit by unit
by a pool of child processes, one per core: word by word where `word_counts` can do it exactly, else
with `tokenizers`' `encode_batch`. Each unit's counts come back to the parent, which sums them, reports
progress with an ETA, and terminates the workers on cancel. A worker that dies breaks the pool with
a one-line error instead of being restarted for ever (as `multiprocessing.Pool` does)."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..child import _main_script_hidden
from ..errors import Cancelled, CorpusError
from ..progress import CancelToken, ProgressFn, no_progress
from .corpus_sources import TEXT_FIELD, UNIT_BYTES, WorkUnit, plan_units, unit_documents

if TYPE_CHECKING:
    from ..model.loading import LoadedModel


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


def _unit_result(future: Future) -> UnitCount:
    """A unit's counts, or a one-line error when its worker died (killed, out of memory, or its
    tokenizer failed to load: the pool is then broken rather than restarting workers for ever)."""
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise CorpusError(f"a counting process died ({exc}); the corpus was not counted") from exc


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the pool at once: queued units are dropped and running workers terminated (Python 3.11 has no
    public call for the latter; `terminate_workers` arrives in 3.14)."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(timeout=5)
    pool.shutdown(wait=True, cancel_futures=True)  # its manager thread ends once the workers are gone


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
    pool = ProcessPoolExecutor(workers, mp.get_context("spawn"), _init_worker,
                               (str(tokenizer_path), n_rows, column, by_words))
    try:
        with _main_script_hidden():  # the workers start on submission
            pending = {pool.submit(count_unit, unit) for unit in units}
        while pending:
            if cancel.cancelled:
                raise Cancelled("cancelled by the user")
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in done:
                part: UnitCount = _unit_result(future)
                counts[part.ids] += part.counts
                beyond, n_bytes = beyond + part.beyond, n_bytes + part.n_bytes
                documents += part.documents
                methods.add(part.method)
                done_size += part.size
            if done:
                progress(done_size / planned,
                         f"Counting tokens: {_eta(done_size, planned, time.perf_counter() - start)}")
    finally:
        _stop(pool)
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
