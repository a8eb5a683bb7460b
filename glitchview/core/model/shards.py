"""Safetensors checkpoints read as an analysis needs them: a sharded model's index says which shard
holds each tensor, so only the one or two shards with the embedding matrices are opened (an 8B
model's other 30 GB are never read), and a tensor is converted to float32 a block of rows at a time
from the memory map, so a bf16 matrix never exists twice in memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError

INDEX = "model.safetensors.index.json"
_CHUNK_BYTES = 64 * 2**20  # float32 rows converted per step
_STORED = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1}


def indexed_tensors(folder: Path) -> dict[str, Path]:
    """`{tensor name: shard path}` from the folder's safetensors index; empty when it has none.
    No shard is opened: a shard is only read once one of its tensors is."""
    path = folder / INDEX
    if not path.exists():
        return {}
    try:
        weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError("its weight_map is empty or not a mapping")
        return {str(name): folder / Path(str(shard)).name for name, shard in weight_map.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"corrupt {INDEX} in {folder}: {exc}") from exc


def _open(path: Path, name: str) -> Any:
    """The safetensors handle of a shard, with one clear error for a missing or corrupt shard."""
    from safetensors import safe_open

    if not path.exists():
        raise ModelLoadError(f"missing shard {path.name} in {path.parent}: it holds {name} "
                             f"(named in {INDEX}); download it again")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelLoadError(f"cannot read {path.name} (truncated or corrupt file?): {exc}") from exc


def stored_bytes(path: Path, name: str) -> int:
    """Memory reading `name` as float32 needs: the matrix plus one converted block of rows."""
    with _open(path, name) as f:
        piece = f.get_slice(name)
        shape, dtype = piece.get_shape(), piece.get_dtype()
    count = int(np.prod(shape))
    return count * 4 + min(count * _STORED.get(dtype, 4), 2 * _CHUNK_BYTES)


def read_float32(path: Path, name: str) -> np.ndarray:
    """Tensor `name` of a safetensors file as float32, converted a block of rows at a time."""
    with _open(path, name) as f:
        try:
            piece = f.get_slice(name)
            shape = [int(d) for d in piece.get_shape()]
            if len(shape) != 2:
                return f.get_tensor(name).float().numpy()
            out = np.empty(shape, dtype=np.float32)
            step = max(1, _CHUNK_BYTES // (4 * max(shape[1], 1)))
            for first in range(0, shape[0], step):
                out[first:first + step] = piece[first:first + step].float().numpy()
        except Exception as exc:
            raise ModelLoadError(f"cannot read tensor {name} from {path.name} "
                                 f"(truncated or corrupt file?): {exc}") from exc
    return out
