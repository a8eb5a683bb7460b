"""Research-scale shapes: a synthetic Llama-3-8B-shaped checkpoint (128,256 x 4,096, bf16, untied, 4
shards, placeholders in the middle shards, 300 planted under-trained rows) is written to a temporary
folder, then, each in a fresh process: the open (new sharded reader, and the previous whole-tensor
reader as the baseline, same run), open -> first map (PCA), the full analysis, peak memory, and the
recall of the planted rows in the top 1% of glitch_score. For the 8B shape the same matrices are then
written as a Q4_K GGUF (llama.cpp's quantiser) and analysed the same way, by the direct GGUF reader.
Run: `python bench/bench_scale.py [8b|70b ...]` (8b by default; 70b needs ~16 GB and minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine  # noqa: E402
from synthetic_checkpoint import SHAPES, write_checkpoint, write_gguf  # noqa: E402

GGUF_SHAPES = {"8b"}  # the shapes also measured as a Q4_K GGUF file


def _child(args: list[str], cache: Path) -> dict:
    env = {**os.environ, "GLITCHVIEW_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def analyse(folder: str, planted_file: str) -> None:
    """Child mode: open, first map, full analysis; print the figures as JSON."""
    from glitchview.core.model.loading import load_model
    from glitchview.core.model.sources import resolve
    from glitchview.core.pipeline import scan_model

    start = time.perf_counter()
    model = load_model(resolve(folder))
    opened = time.perf_counter() - start
    first_map: list[float] = []
    analysis = scan_model(model, folder, on_map=lambda _: first_map.append(time.perf_counter() - start))
    total = time.perf_counter() - start
    planted = set(np.load(planted_file).tolist())
    top = set(analysis.top("glitch_score", len(analysis) // 100).tolist())
    peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    print(json.dumps({"open": opened, "first_map": first_map[0], "analysis": total, "peak": peak,
                      "recall": len(planted & top) / len(planted), "timings": analysis.timings}))


def bench(shape: str) -> None:
    rows, dim = SHAPES[shape]
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{shape}-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        model = write_checkpoint(root / "model", rows, dim)
        np.save(root / "planted.npy", model.planted)
        matrix_gb = rows * dim * 4 / 2**30
        print(f"{shape}: {rows:,} x {dim:,} bf16 untied, 4 shards, {len(model.planted)} planted rows "
              f"(written in {time.perf_counter() - start:.0f} s; float32 matrix {matrix_gb:.2f} GB)")
        for path in ("new", "old"):
            fig = _child([str(HERE / "peak_open.py"), str(model.folder), path], root / f"cache-{path}")
            print(f"  open, {path:3s} reader: {fig['seconds']:6.1f} s, added peak {fig['added_peak'] / 2**30:5.2f} GB "
                  f"({fig['added_peak'] / (rows * dim * 4):.2f}x the float32 embedding matrix)")
        _analysis(model.folder, root, "scan")
        if shape in GGUF_SHAPES:
            start = time.perf_counter()
            gguf = write_gguf(root / "model.gguf", rows, dim)
            print(f"  GGUF, token_embd and output Q4_K (llama.cpp's quantiser), same planted rows: "
                  f"{gguf.folder.stat().st_size / 2**30:.2f} GB, written in {time.perf_counter() - start:.0f} s")
            _analysis(gguf.folder, root, "gguf")


def _analysis(path: Path, root: Path, name: str) -> None:
    """The analysis of `path` in a fresh process with an empty cache, one figure line and its steps."""
    fig = _child([__file__, "--analyse", str(path), str(root / "planted.npy")], root / f"cache-{name}")
    print(f"  {path.name}: open {fig['open']:.1f} s -> first map {fig['first_map']:.1f} s -> full analysis "
          f"{fig['analysis']:.1f} s; peak RSS {fig['peak'] / 2**30:.2f} GB; planted recall in the top 1% "
          f"of glitch_score: {fig['recall']:.3f}")
    steps = ", ".join(f"{k} {v:.1f}" for k, v in fig["timings"].items())
    print(f"  analysis steps (s): {steps}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--analyse"]:
        analyse(*sys.argv[2:4])
    else:
        print(machine())
        print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared with other sessions)")
        for name in sys.argv[1:] or ["8b"]:
            bench(name)
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
