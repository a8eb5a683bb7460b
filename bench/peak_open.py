"""Open one model in this process and print, as JSON, the seconds and the peak resident memory the
open added (VmHWM after, less VmRSS before, with the peak reset first), so that imports already done
do not count. Run as a child: `python bench/peak_open.py MODEL [old]`; `old` reads the embedding
tensors the way GlitchView did before the sharded reader (whole tensor, then a float32 copy),
with the same finite and tied checks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _old_read(folder: Path) -> list:
    """The previous reader: every shard's header listed, each matrix read whole, then converted."""
    from safetensors import safe_open

    out = []
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                if name.endswith(("embed_tokens.weight", "lm_head.weight")):
                    out.append(f.get_tensor(name).float().numpy())
    return out


def main(name: str, path: str = "new") -> None:
    import numpy as np  # imports before the measurement
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401

    from glitchview.core.model.loading import load_model
    from glitchview.core.model.sources import resolve

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _status("VmRSS")
    start = time.perf_counter()
    if path == "old":  # with the checks load_model makes on every matrix, as in the new path
        matrices = _old_read(Path(name))
        assert all(np.isfinite(m).all() for m in matrices) and not np.array_equal(matrices[0], matrices[-1])
    else:
        model = load_model(resolve(name))
        matrices = [m for m in (model.input_embeddings, model.output_embeddings) if m is not None]
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "added_peak": _status("VmHWM") - before,
                      "matrix_bytes": matrices[0].nbytes, "untied": len(matrices) == 2}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
