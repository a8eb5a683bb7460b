"""Opening a wide, sharded bf16 checkpoint adds less than 3x its float32 embedding matrix to the
process's peak memory (the untied pair alone is 2x): nothing allocates the network or a second
copy of a matrix. The 8B shape (128,256 x 4,096) is measured by bench/bench_scale.py; here a
narrower-vocabulary shape of the same width keeps the suite quick on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
from synthetic_checkpoint import write_checkpoint  # noqa: E402


def test_open_adds_less_than_three_embedding_matrices(tmp_path: Path) -> None:
    model = write_checkpoint(tmp_path / "wide", rows=16_384, dim=4_096, n_planted=50)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(BENCH / "peak_open.py"), str(model.folder)], env=env,
                          capture_output=True, text=True, check=True, timeout=600)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["untied"] and figures["matrix_bytes"] == 16_384 * 4_096 * 4
    assert figures["added_peak"] < 3 * figures["matrix_bytes"], figures
