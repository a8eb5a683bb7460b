"""GGUF first open: the direct reader (only the embedding matrix, tokenizer from the metadata) beside
the old path (transformers dequantises the whole model into a safetensors cache), in the same run.

Each open runs in its own process with an empty cache folder, so its time and peak memory (the
process and its children) are those of a first open; a second open of the new path shows the
cached case. Then both loads are analysed with the same settings and the largest absolute
difference of every indicator is printed. Run: `python bench/bench_gguf_open.py smollm2 gemma3`."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402


def _old_open(name: str) -> tuple[np.ndarray, np.ndarray | None, Path]:
    """Today's path before the direct reader: whole-model conversion, then the folder read."""
    from glitchview.core.model.loading import _cached_folder, read_embeddings
    from glitchview.core.model.sources import fingerprint, resolve
    from glitchview.core.progress import CancelToken, no_progress

    source = resolve(name)
    folder, _ = _cached_folder(source, fingerprint(source), no_progress, CancelToken())
    inputs, outputs = read_embeddings(folder)
    return inputs, outputs, folder


def _one(path: str, name: str, out: str) -> None:
    """Child mode: open once, report seconds and peak RSS, save the matrices and the folder."""
    start = time.perf_counter()
    if path == "new":
        from glitchview.core.model.loading import load_model
        from glitchview.core.model.sources import resolve

        model = load_model(resolve(name))
        inputs, outputs, folder = model.input_embeddings, model.output_embeddings, model.folder
    else:
        inputs, outputs, folder = _old_open(name)
    seconds = time.perf_counter() - start
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
    np.save(out, inputs)
    print(json.dumps({"seconds": seconds, "peak": peak, "folder": str(folder), "untied": outputs is not None}))


def _measure(path: str, name: str, cache: Path, out: Path) -> dict:
    env = {**os.environ, "GLITCHVIEW_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, __file__, "--one", path, name, str(out)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{path} open of {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _analyse(name: str, matrix_file: Path, folder: str) -> dict[str, np.ndarray]:
    """Every indicator of one load, computed by the pipeline with fixed settings."""
    from glitchview.core.model.loading import LoadedModel, _read_config
    from glitchview.core.model.sources import fingerprint, resolve
    from glitchview.core.pipeline import ScanSettings, analyse

    source = resolve(name)
    model = LoadedModel(source, fingerprint(source), Path(folder), np.load(matrix_file), None,
                        _read_config(Path(folder)))
    return analyse(model, name, ScanSettings(projections=())).scores


def compare(name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as tmp:
        root = Path(tmp)
        demo = root / "demo"  # the Gemma-3 demo assembles its GGUF in the cache: share that file
        demo.symlink_to(Path(os.environ.get("GLITCHVIEW_CACHE_DIR", Path.home() / ".cache" / "glitchview")) / "demo")
        for sub in ("new", "old"):
            (root / sub).mkdir()
            (root / sub / "demo").symlink_to(demo.resolve())
        new = _measure("new", name, root / "new", root / "new.npy")
        again = _measure("new", name, root / "new", root / "again.npy")
        old = _measure("old", name, root / "old", root / "old.npy")
        emb = np.load(root / "new.npy")
        mb = emb.nbytes / 2**20
        print(f"{name}: {emb.shape[0]:,} x {emb.shape[1]} (float32 {mb:,.0f} MB), untied: {new['untied']}")
        print(f"  first open   new {new['seconds']:6.1f} s  peak {new['peak'] / 2**20:6,.0f} MB "
              f"({new['peak'] / emb.nbytes:.1f}x the matrix)  |  old {old['seconds']:6.1f} s  "
              f"peak {old['peak'] / 2**20:6,.0f} MB")
        print(f"  cached open  new {again['seconds']:6.1f} s")
        old_emb = np.load(root / "old.npy")
        print(f"  embedding matrix max |new - old| = {float(np.abs(emb - old_emb).max()):.3g}")
        same_vocab = _same_tokens(new["folder"], old["folder"])
        print(f"  token table: every id decodes the same with both tokenizers: {same_vocab}")
        scores_new = _analyse(name, root / "new.npy", new["folder"])
        scores_old = _analyse(name, root / "old.npy", old["folder"])
        for ind in scores_new:
            diff = np.nanmax(np.abs(scores_new[ind] - scores_old[ind]))
            print(f"  indicator {ind:28s} max |new - old| = {diff:.3g}")


def _same_tokens(new_folder: str, old_folder: str) -> bool:
    from glitchview.core.model.loading import read_tokenizer

    a, b = read_tokenizer(Path(new_folder)), read_tokenizer(Path(old_folder))
    n = a.get_vocab_size()
    ids = list(range(n))
    return (n == b.get_vocab_size() and [a.id_to_token(i) for i in ids] == [b.id_to_token(i) for i in ids]
            and a.decode_batch([[i] for i in ids]) == b.decode_batch([[i] for i in ids]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        _one(*sys.argv[2:5])
    else:
        print(machine())
        print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared with other sessions)")
        for model_name in sys.argv[1:] or ["smollm2", "gemma3"]:
            compare(model_name)
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
