"""Hostile model inputs (issue 12): GGUF header bombs, special files where model files should be,
Hugging Face cache symlinks, damaged configs, pickled and legacy .bin weights, vocabularies with
holes or literal U+2581, embedding rows of NaN/inf, a cache disk without room."""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TinyModel

from glitchview.cli import main
from glitchview.core.errors import Cancelled, ModelLoadError
from glitchview.core.model.gguf_header import read_gguf_header
from glitchview.core.model.loading import check_disk
from glitchview.core.model.vocab import build_token_table
from glitchview.core.pipeline import ScanSettings, open_model, scan
from glitchview.core.progress import CancelToken


def _gguf(path: Path, *kv: bytes, n_tensors: int = 0) -> Path:
    """A GGUF v3 header by hand: `kv` are encoded key/value entries."""
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kv)) + b"".join(kv))
    return path


def _key(name: str) -> bytes:
    return struct.pack("<Q", len(name)) + name.encode()


def _array(name: str, item_type: int, count: int, payload: bytes = b"") -> bytes:
    return _key(name) + struct.pack("<IIQ", 9, item_type, count) + payload


FIFO_CASES = r"""
import json, os, shutil, sys
from pathlib import Path
from types import SimpleNamespace
from glitchview.core.pipeline import model_changed, open_model

model, work = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("x.gguf", "config.json", "model.safetensors", "tokenizer.json", "analysis-model.gguf"):
    folder = work / name.replace(".", "_")
    shutil.copytree(model, folder)
    fifo = folder / name
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    target = fifo if name.endswith(".gguf") else folder
    try:
        if name.startswith("analysis"):
            outcome = repr(model_changed(SimpleNamespace(model=SimpleNamespace(name=str(fifo), fingerprint="x"))))
        else:
            outcome = repr(open_model(str(target)))
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    print(json.dumps([name, outcome]), flush=True)
"""


def _run_fifo_cases(model: Path, work: Path) -> dict[str, str]:
    """Open every case in a child process: a FIFO blocks `open()` with the GIL held (safetensors,
    tokenizers), so a hang must be one that the test can kill, reported as which cases never ended."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-c", FIFO_CASES, str(model), str(work)], env=env, text=True,
                              capture_output=True, timeout=60, check=False).stdout
    except subprocess.TimeoutExpired as exc:
        done = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    return dict(json.loads(line) for line in done.splitlines() if line.startswith("["))


# --- item 2: GGUF header bombs -------------------------------------------------------------------

@pytest.mark.parametrize("kv, message", [
    (_array("bomb", 0, 2**60), "declares more than 33,554,432 array elements"),
    (_array("strings", 8, 2**40), "declares more than 33,554,432 array elements"),
    (_array("bytes", 0, 2**24), "array bytes (16,777,216 items) needs 16,777,216 bytes"),
    (_array("strings", 8, 2**20), "array strings (1,048,576 items) needs 8,388,608 bytes"),
    (_key("s") + struct.pack("<IQ", 8, 2**62), "the value of s needs"),
    (_key("k") + struct.pack("<I", 99), "unknown value type 99"),
    (_array("deep", 9, 1, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1)),
     "nests arrays more than"),
])
def test_gguf_header_bombs_are_refused_at_once(kv: bytes, message: str, tmp_path: Path) -> None:
    path = _gguf(tmp_path / "bomb.gguf", kv)
    assert path.stat().st_size < 200
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_gguf_header(path)
    with pytest.raises(ModelLoadError):
        open_model(str(path))
    assert time.monotonic() - start < 2


def test_gguf_tensor_table_must_fit_the_file(tmp_path: Path) -> None:
    name = b"token_embd.weight"
    tensor = struct.pack("<Q", len(name)) + name + struct.pack("<IQQIQ", 2, 2**20, 2**20, 0, 0)
    path = _gguf(tmp_path / "hollow.gguf", _key("general.architecture") + struct.pack("<IQ", 8, 5) + b"llama",
                 n_tensors=1)
    path.write_bytes(path.read_bytes() + tensor)
    with pytest.raises(ModelLoadError, match="lies outside the file"):
        read_gguf_header(path)


def test_big_metadata_arrays_are_skipped_counted_and_cancellable(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    count = 1_000_000
    path = _gguf(tmp_path / "wide.gguf", _array("general.bytes", 0, count, bytes(count)),
                 _array("tokens", 8, 300_000, (struct.pack("<Q", 1) + b"x") * 300_000))
    start = time.monotonic()
    header = read_gguf_header(path)
    assert time.monotonic() - start < 2 and header.metadata["general.bytes"] == count
    assert header.metadata_items == count + 300_000
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        read_gguf_header(path, cancel)
    with pytest.raises(ModelLoadError, match="holds no token_embd.weight"):  # an analysis reads no more
        open_model(str(path))
    monkeypatch.setenv("GLITCHVIEW_MEMORY_LIMIT_MB", "512")  # the converter would build ~1 kB per element
    from glitchview.core.model.loading import _cached_folder
    from glitchview.core.model.sources import resolve

    with pytest.raises(ModelLoadError, match="dequantising wide.gguf needs about"):  # building the network
        _cached_folder(resolve(str(path)), "wide", lambda *_: None, CancelToken())


def test_the_real_gguf_header_reads(tiny_gguf: TinyModel) -> None:
    header = read_gguf_header(tiny_gguf.path)
    assert header.architecture == "llama"
    embedding = next(t for t in header.tensors if t.name == "token_embd.weight")
    assert embedding.shape == (32, tiny_gguf.vocab_size) and embedding.n_bytes == 32 * tiny_gguf.vocab_size * 4


# --- items 5 and 10: special files and Hugging Face cache links ---------------------------------

def test_a_fifo_where_a_model_file_should_be_is_refused(tiny_hf: TinyModel, tmp_path: Path) -> None:
    outcomes = _run_fifo_cases(tiny_hf.path, tmp_path)
    for name in ("x.gguf", "config.json", "model.safetensors", "tokenizer.json"):
        assert name in outcomes, f"opening a model with a FIFO as {name} hung"
        assert outcomes[name].startswith("ModelLoadError") and "not a regular file" in outcomes[name], outcomes
    assert outcomes.get("analysis-model.gguf") == "''", "an analysis whose model path is a FIFO hung or failed"


def test_a_gguf_in_the_hugging_face_cache_opens(tiny_gguf: TinyModel, tmp_path: Path) -> None:
    blob = tmp_path / "hub" / "blobs" / "5e1f0a9c"
    blob.parent.mkdir(parents=True)
    shutil.copy(tiny_gguf.path, blob)
    snapshot = tmp_path / "hub" / "snapshots" / "main" / tiny_gguf.path.name
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(Path("../../blobs/5e1f0a9c"))
    model = open_model(str(snapshot))
    np.testing.assert_allclose(model.input_embeddings, tiny_gguf.embeddings, atol=1e-6)


# --- items 11 and 14: damaged configs and foreign messages, one line each ------------------------

@pytest.mark.parametrize("config, message", [
    ("[]", "is not a JSON object (it holds a list)"),
    ("null", "is not a JSON object (it holds a NoneType)"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"architectures": 5}', "'architectures' must be a list of class names, not 5"),
    ('{"architectures": [5]}', "'architectures' must be a list"),
    ('{"model_type": 7}', "'model_type' must be a string"),
    ("{oops", "cannot read"),
])
def test_damaged_configs_are_one_clear_line(config: str, message: str, tiny_hf: TinyModel, tmp_path: Path,
                                           capsys) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_hf.path, folder)
    (folder / "config.json").write_text(config)
    assert main(["scan", str(folder), "-k", "3"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("glitchview:")]
    assert len(err) == 1 and message in err[0] and "unexpected" not in err[0]


def test_refusing_pickled_weights_is_one_line_of_ours(tiny_hf: TinyModel, tmp_path: Path, capsys) -> None:
    import pickle

    folder = tmp_path / "evil"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_hf.path / name, folder / name)
    with (folder / "pytorch_model.bin").open("wb") as f:
        pickle.dump({"model.embed_tokens.weight": threading.Lock}, f)
    assert main(["scan", str(folder), "-k", "3"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("glitchview:")]
    assert len(err) == 1 and "only plain tensors are accepted" in err[0]
    assert "it holds pickled objects" in err[0] and "weights_only" not in err[0] and "\x1b" not in err[0]


def test_a_config_transformers_cannot_build_is_one_line_in_verify(tiny_hf: TinyModel, tmp_path: Path,
                                                                   capfd) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_hf.path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_attention_heads"] = 7  # 32 dims do not split into 7 heads
    config["rope_scaling"] = {"rope_type": "no-such-rope"}
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["verify", str(folder), "--ids", "5", "-k", "3"]) == 2
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip() and "[" not in line[:30]]
    assert len(err) == 1 and err[0].startswith("glitchview: error: cannot build"), err


# --- item 9: .bin weights and the memory cap -------------------------------------------------------

def _bin_folder(tiny: TinyModel, folder: Path, zipped: bool) -> Path:
    import torch

    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny.path / name, folder / name)
    torch.save({"model.embed_tokens.weight": torch.from_numpy(tiny.embeddings)}, folder / "pytorch_model.bin",
               _use_new_zipfile_serialization=zipped)
    return folder


@pytest.mark.parametrize("zipped", [True, False])
def test_bin_weights_count_against_the_memory_cap(zipped: bool, tiny_hf: TinyModel, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _bin_folder(tiny_hf, tmp_path / "bin", zipped)
    np.testing.assert_array_equal(open_model(str(folder)).input_embeddings, tiny_hf.embeddings)
    monkeypatch.setenv("GLITCHVIEW_MEMORY_LIMIT_MB", "0.02")  # 20 kB: less than the 40 kB matrix
    with pytest.raises(ModelLoadError, match="needs about"):
        open_model(str(folder))


# --- items 7 and 8: vocabularies ------------------------------------------------------------------

def _word_level(vocab: dict[str, int]):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


def test_a_literal_u2581_keeps_its_bytes() -> None:
    from tokenizers import AddedToken, Tokenizer, decoders, models

    table = build_token_table(_word_level({"[UNK]": 0, "a▁b": 1, "▁x": 2}), 3)
    assert table.token_bytes[1].hex() == "61e2968162" and table.token_bytes[2] == "▁x".encode()
    byte_level = Tokenizer(models.BPE())
    byte_level.decoder = decoders.ByteLevel()
    byte_level.add_tokens([AddedToken("a▁b", special=False)])
    assert build_token_table(byte_level, 1).token_bytes[0].hex() == "61e2968162"
    sentencepiece = Tokenizer(models.WordLevel({"[UNK]": 0, "▁hi": 1}, unk_token="[UNK]"))
    sentencepiece.decoder = decoders.Metaspace()
    assert build_token_table(sentencepiece, 2).token_bytes[1] == b" hi"  # there ▁ is the space


def test_a_vocabulary_with_a_hole_flags_only_the_hole() -> None:
    table = build_token_table(_word_level({"[UNK]": 0, "a": 1, "b": 2, "z": 7}), 9)
    assert np.flatnonzero(table.flags["no_token"]).tolist() == [3, 4, 5, 6, 8]
    assert table.pieces[7] == "z" and table.tokenizer_size == 8


# --- item 15: NaN and infinite rows are shown, flagged and ranked first ---------------------------

def test_nonfinite_rows_are_flagged_scored_and_ranked_first(tiny_hf: TinyModel, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from glitchview.core.scores.indicators import rank_order
    from glitchview.core.store.analysis_file import load_analysis, save_analysis
    from glitchview.core.store.export import write_json

    folder = tmp_path / "broken"
    shutil.copytree(tiny_hf.path, folder)
    weights = load_file(str(folder / "model.safetensors"))
    name = next(k for k in weights if "embed_tokens" in k)
    weights[name][100, 3] = float("nan")
    weights[name][101] = float("inf")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _, analysis = scan(str(folder), ScanSettings(clusters=4))
    assert np.flatnonzero(analysis.table.flags["nonfinite"]).tolist() == [100, 101]
    assert any("2 embedding rows hold NaN" in note for note in analysis.model.notes)
    for indicator, scores in analysis.scores.items():
        assert np.isfinite(np.delete(scores, [100, 101])).all(), indicator
        assert sorted(analysis.top(indicator, 2).tolist()) == [100, 101], indicator
        assert sorted(rank_order(scores, "low" if scores[100] < 0 else "high")[:2].tolist()) == [100, 101]
    assert np.isfinite(analysis.projections["pca"]).all() and 100 not in analysis.reference.ids
    reloaded = load_analysis(save_analysis(analysis, tmp_path / "b.gva.npz"))
    assert reloaded.table.flags["nonfinite"][[100, 101]].all()
    write_json(reloaded, tmp_path / "b.json", [100, 101, 5], "norm")
    rows = json.loads((tmp_path / "b.json").read_text())["tokens"]
    assert rows[0]["norm"] is None and "nonfinite" in rows[0]["flags"]


# --- item 16: a cache disk without room is refused before the conversion --------------------------

def test_a_full_cache_disk_is_refused_before_converting(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    check_disk(tmp_path, free // 2, "caching")
    with pytest.raises(ModelLoadError, match="needs about .* MB of disk .* are free"):
        check_disk(tmp_path, free + 2**30, "caching the dequantised weights of x.gguf")


def test_a_failed_cache_write_is_one_clear_line(tiny_gguf: TinyModel, tmp_path: Path) -> None:
    """A real write failure in the conversion child (verify builds the network: the whole-model
    conversion): files are capped at 64 kB (RLIMIT_FSIZE; Python
    ignores SIGXFSZ, so the write fails with EFBIG as it would with ENOSPC on a full disk)."""
    import resource
    import subprocess
    import sys

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

    root = str(Path(__file__).resolve().parents[1])  # this checkout's glitchview, whatever is installed
    env = {**os.environ, "GLITCHVIEW_CACHE_DIR": str(tmp_path / "cache"), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "glitchview", "verify", str(tiny_gguf.path), "--ids", "1"], env=env,
                            preexec_fn=small_files, capture_output=True, text=True, timeout=300, check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("glitchview:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "cannot write the converted model to the cache" in errors[0] and "File too large" in errors[0]
    assert not list((tmp_path / "cache" / "models").glob(".staging-*"))  # the half-written cache is removed

