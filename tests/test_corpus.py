"""Corpus frequency: exact counts on real text already on disk (licence texts of installed packages)
against an independent whole-file count, every corpus format, clear errors, cancel, the analysis
file round trip and the command line."""

from __future__ import annotations

import collections
import glob
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TinyModel

from glitchview.cli import main
from glitchview.core.errors import AnalysisFileError, Cancelled, CorpusError
from glitchview.core.progress import CancelToken
from glitchview.core.scores.corpus import count_corpus

LICENCES = sorted(p for p in glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "*", "LICENSE*"))
                  if Path(p).is_file())


def tokenizer_path(model: TinyModel) -> Path:
    return model.path / "tokenizer.json"


def independent_counts(model: TinyModel, texts: list[str]) -> np.ndarray:
    """Each text encoded whole, one by one, in this process: no cutting, no pool."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path(model)))
    counter: collections.Counter = collections.Counter()
    for text in texts:
        counter.update(tok.encode(text, add_special_tokens=False).ids)
    out = np.zeros(model.vocab_size, dtype=np.int64)
    for i, c in counter.items():
        out[i] = c
    return out


@pytest.fixture(scope="module")
def licences() -> list[Path]:
    if len(LICENCES) < 3:
        pytest.skip("fewer than three licence files in this environment")
    return [Path(p) for p in LICENCES]


def test_licence_texts_counted_exactly_with_many_cuts(tiny_hf: TinyModel, licences: list[Path]) -> None:
    # 2 KiB units: every licence is cut in several places, and the units spread over two processes
    counts = count_corpus(tokenizer_path(tiny_hf), tiny_hf.vocab_size, licences, workers=2, unit_bytes=2048)
    texts = [p.read_bytes().decode("utf-8", errors="replace") for p in licences]
    expected = independent_counts(tiny_hf, texts)
    assert counts.counts.sum() > 10_000
    np.testing.assert_array_equal(counts.counts, expected)
    assert counts.total == expected.sum()
    assert counts.n_bytes == sum(len(t.encode("utf-8")) for t in texts)
    assert counts.workers == 2 and len(counts.sources) == len(licences)


def test_folders_jsonl_parquet_and_saved_datasets(tiny_hf: TinyModel, licences: list[Path], tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    texts = [p.read_text(encoding="utf-8", errors="replace") for p in licences]
    paragraphs = [para for t in texts for para in t.split("\n\n") if para.strip()]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with (corpus / "a.jsonl").open("w", encoding="utf-8") as handle:
        for para in paragraphs[::3]:
            handle.write(json.dumps({"id": 1, "text": para}) + "\n")
    pq.write_table(pa.table({"text": paragraphs[1::3]}), corpus / "b.parquet", row_group_size=7)
    dataset = corpus / "saved"  # what datasets' save_to_disk writes: Arrow stream files listed in state.json
    dataset.mkdir()
    table = pa.table({"text": paragraphs[2::3], "n": list(range(len(paragraphs[2::3])))})
    with pa.ipc.new_stream(str(dataset / "data-00000-of-00001.arrow"), table.schema) as writer:
        for batch in table.to_batches(max_chunksize=5):
            writer.write_batch(batch)
    (dataset / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (dataset / "dataset_info.json").write_text("{}")
    (corpus / "notes.md").write_text("not a corpus file")
    (corpus / "loop").symlink_to(corpus)  # a link back up the tree: skipped, not followed forever
    counts = count_corpus(tokenizer_path(tiny_hf), tiny_hf.vocab_size, [corpus], workers=2, unit_bytes=1024)
    np.testing.assert_array_equal(counts.counts, independent_counts(tiny_hf, paragraphs))
    assert counts.documents == len(paragraphs)
    assert any(s.endswith("notes.md") for s in counts.skipped)
    assert any(s.endswith("loop") for s in counts.skipped)


MIXED = ("Ünïcode: 東京タワー, émoji 👩‍💻🚀, digits ²³ ١٢٣ Ⅻ, it's I'LL they've\t\ttabs  \n"
         "a literal <|endoftext|> inside text<|pad|>and more\r\n\n\n   indented\n\u200b zero-width\n") * 50


@pytest.mark.parametrize("by_words", [True, False])
def test_word_path_and_encode_batch_both_exact(tiny_hf: TinyModel, licences: list[Path], tmp_path: Path,
                                               by_words: bool) -> None:
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(MIXED, encoding="utf-8", newline="")
    paths = [mixed, *licences[:4]]
    counts = count_corpus(tokenizer_path(tiny_hf), tiny_hf.vocab_size, paths, workers=2, unit_bytes=1500,
                          by_words=by_words)
    assert counts.method == ("words" if by_words else "encode_batch")
    expected = independent_counts(tiny_hf, [p.read_bytes().decode("utf-8", errors="replace") for p in paths])
    np.testing.assert_array_equal(counts.counts, expected)
    assert counts.counts[0] == 50  # the literal <|endoftext|> is the special token, as encode makes it


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.txt", "no such file or folder"),
    (lambda d: (os.mkfifo(d / "pipe.txt"), d / "pipe.txt")[1], "not a regular file"),
    (lambda d: ((d / "bad.parquet").write_bytes(b"PAR1 this is no parquet"), d / "bad.parquet")[1], "bad.parquet"),
    (lambda d: ((d / "x.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n'), d / "x.jsonl")[1],
     "no text field 'text'"),
    (lambda d: ((d / "x.jsonl").write_text('{"text": "ok"}\nnot json\n'), d / "x.jsonl")[1], "is not JSON"),
    (lambda d: ((d / "x.csv").write_text("a,b"), d / "x.csv")[1], "not a corpus file"),
])
def test_bad_corpus_paths_give_one_clear_error(tiny_hf: TinyModel, tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(CorpusError, match=message):
        count_corpus(tokenizer_path(tiny_hf), tiny_hf.vocab_size, [path], workers=1)


def test_a_worker_that_cannot_start_fails_the_count_instead_of_hanging(tiny_hf: TinyModel, licences: list[Path],
                                                                     tmp_path: Path) -> None:
    """A tokenizer file that the workers cannot load: one clear error, no pool restarting workers for ever."""
    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"model": "not a tokenizer"}', encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(CorpusError, match="a counting process died"):
        count_corpus(broken, tiny_hf.vocab_size, licences, workers=2, unit_bytes=2048)
    assert time.perf_counter() - start < 60
    assert not multiprocessing.active_children()


def test_cancel_stops_the_workers(tiny_hf: TinyModel, licences: list[Path], tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("\n".join(p.read_text(encoding="utf-8", errors="replace") for p in licences) * 200)
    cancel, reports = CancelToken(), []

    def progress(fraction: float, message: str) -> None:
        reports.append(message)
        if fraction > 0.05:
            cancel.cancel()

    start = time.perf_counter()
    with pytest.raises(Cancelled):
        count_corpus(tokenizer_path(tiny_hf), tiny_hf.vocab_size, [big], workers=2, unit_bytes=64 << 10,
                     progress=progress, cancel=cancel)
    assert time.perf_counter() - start < 30
    assert any("MB/s, ETA" in m for m in reports)
    assert not multiprocessing.active_children()  # the pool was terminated, not left running


def test_counts_kept_in_the_analysis_file_and_cli(tiny_hf: TinyModel, licences: list[Path], tmp_path: Path,
                                                  capsys) -> None:
    from glitchview.core.store.analysis_file import load_analysis

    session = tmp_path / "t.gva.npz"
    assert main(["scan", str(tiny_hf.path), "-k", "4", "--session", str(session)]) == 0
    old = load_analysis(session)
    assert old.corpus is None and "corpus_rarity" not in old.scores  # a file without counts still loads
    assert main(["corpus", str(tiny_hf.path), *map(str, licences), "--session", str(session)]) == 0
    out = capsys.readouterr().out
    assert "never seen" in out and "Saved the counts" in out
    analysis = load_analysis(session)
    expected = independent_counts(tiny_hf, [p.read_bytes().decode("utf-8", errors="replace") for p in licences])
    np.testing.assert_array_equal(analysis.corpus.counts, expected)
    rarity = analysis.scores["corpus_rarity"]
    never = expected == 0
    assert rarity[never].min() > rarity[~never].max() - 1e-12  # never-seen tokens are the rarest
    discoveries = never & ~analysis.known_unused  # known unused tokens are ranked after everything else
    top = analysis.top("corpus_rarity", int(discoveries.sum()))
    assert sorted(top.tolist()) == np.flatnonzero(discoveries).tolist()

    with np.load(session) as data:  # a damaged member is a clear error, never a NaN score
        members = {name: data[name] for name in data.files}
    members["corpus_counts"] = -members["corpus_counts"]
    damaged = tmp_path / "damaged.gva.npz"
    np.savez(damaged, **members)
    with pytest.raises(AnalysisFileError, match="corpus counts out of range"):
        load_analysis(damaged)


def test_cli_errors_exit_2(tiny_hf: TinyModel, tmp_path: Path, capsys) -> None:
    assert main(["corpus", str(tiny_hf.path), str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("demo, method", [("smollm2", "words"), ("minilm", "encode_batch"),
                                          ("gemma3", "words")])
def test_demo_tokenizers_count_exactly(demo: str, method: str, licences: list[Path], tmp_path: Path) -> None:
    from glitchview.core.model.sources import demo_installed

    if not demo_installed(demo):  # gemma3 is installed by `make bench`, not by `make test`
        pytest.skip(f"the {demo} demo package is not installed")
    from tokenizers import Tokenizer

    from glitchview.core.pipeline import open_model
    from glitchview.core.scores.corpus import tokenizer_file

    model = open_model(demo)
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(MIXED, encoding="utf-8", newline="")
    paths = [mixed, *licences]
    counts = count_corpus(tokenizer_file(model), len(model.input_embeddings), paths, workers=2, unit_bytes=2048)
    assert counts.method == method
    tok = Tokenizer.from_file(str(tokenizer_file(model)))
    tok.no_truncation()  # as the workers do: a saved padding or truncation would change the counts
    tok.no_padding()
    expected = np.zeros(len(counts.counts), dtype=np.int64)
    for p in paths:
        ids = np.asarray(tok.encode(p.read_bytes().decode("utf-8", errors="replace"), add_special_tokens=False).ids)
        np.add.at(expected, ids[ids < len(expected)], 1)
    np.testing.assert_array_equal(counts.counts, expected)


def test_counts_survive_a_re_clustering(tiny_hf: TinyModel, licences: list[Path]) -> None:
    from glitchview.core import operations
    from glitchview.core.research_operations import count_corpus as count_for_session

    session = operations.open_model(str(tiny_hf.path)).session()
    session.apply(count_for_session(session.snapshot("corpus"), licences[:3]))
    counts = session.analysis.corpus.counts.copy()
    session.apply(operations.recluster(session.snapshot("re-cluster"), 5))
    assert len(session.analysis.centers) == 5
    np.testing.assert_array_equal(session.analysis.corpus.counts, counts)
    assert "corpus_rarity" in session.analysis.scores
