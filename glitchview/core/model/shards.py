"""Safetensors checkpoints read as an analysis needs them: a sharded model's index says which shard
holds each tensor, so only the one or two shards with the embedding matrices are opened (an 8B
model's other 30 GB are never read), and a tensor is read and converted to float32 a block of rows
at a time with plain reads, so the stored matrix never sits in the process's memory beside the float one."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError

INDEX = "model.safetensors.index.json"
_CHUNK_BYTES = 64 * 2**20  # float32 rows converted per step
_STORED = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1}
_MAX_HEADER = 100 * 2**20  # a safetensors header is JSON; the format caps it at 100 MB


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


def _entry(path: Path, name: str) -> tuple[str, list[int], int]:
    """(dtype, shape, absolute offset) of tensor `name`, from the file's JSON header, checked against
    the file's size; one clear error for a missing, truncated or corrupt shard."""
    if not path.exists():
        raise ModelLoadError(f"missing shard {path.name} in {path.parent}: it holds {name} "
                             f"(named in {INDEX}); download it again")
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > min(size - 8, _MAX_HEADER):
                raise ValueError("its header length runs past the end of the file")
            entry = json.loads(f.read(length))[name]
        dtype, shape = str(entry["dtype"]), [int(d) for d in entry["shape"]]
        begin, end = (8 + length + int(o) for o in entry["data_offsets"])
        if end > size or end - begin != int(np.prod(shape)) * _STORED.get(dtype, 0) or dtype not in _STORED:
            raise ValueError(f"{name} ({dtype}, {shape}) does not fit its bytes in the file")
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise ModelLoadError(f"cannot read tensor {name} from {path.name} "
                             f"(truncated or corrupt file?): {exc}") from exc
    return dtype, shape, begin


def stored_bytes(path: Path, name: str) -> int:
    """Memory reading `name` as float32 needs: the matrix plus one converted block of rows."""
    dtype, shape, _ = _entry(path, name)
    count = int(np.prod(shape))
    return count * 4 + min(count * _STORED[dtype], 2 * _CHUNK_BYTES)


def _torch_dtype(dtype: str):
    import torch

    return {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
            "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I8": torch.int8,
            "U8": torch.uint8}[dtype]


def read_float32(path: Path, name: str) -> np.ndarray:
    """Tensor `name` of a safetensors file as float32, read and converted a block of rows at a time
    with plain reads: no memory map, so the stored bytes never count in the process's memory."""
    import torch

    dtype, shape, begin = _entry(path, name)
    rows = shape[0] if shape else 1
    per_row = int(np.prod(shape[1:])) if len(shape) > 1 else (int(np.prod(shape)) if shape else 1)
    # torch's allocator asks for huge pages: filling a fresh numpy array of GBs was 4x slower here
    out = torch.empty((rows, per_row), dtype=torch.float32).numpy()
    step = max(1, _CHUNK_BYTES // (4 * max(per_row, 1)))
    row_bytes = per_row * _STORED[dtype]
    buffer = bytearray(min(step, rows) * row_bytes)
    kind = _torch_dtype(dtype)
    with path.open("rb") as f:
        f.seek(begin)
        for first in range(0, rows, step):
            count = min(step, rows - first)
            block = memoryview(buffer)[:count * row_bytes]
            if f.readinto(block) != len(block):
                raise ModelLoadError(f"cannot read tensor {name} from {path.name} (truncated file?)")
            stored = torch.frombuffer(block, dtype=kind)  # a view of the buffer: no copy
            torch.from_numpy(out[first:first + count]).view(-1).copy_(stored)  # converts in place
    return out.reshape(shape)
