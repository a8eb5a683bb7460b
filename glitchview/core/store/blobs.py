"""Lists of strings or bytes stored as one uint8 blob plus an offsets array: compact, pickle-free
columns for `.npz` files (analysis files, the token-table cache)."""

from __future__ import annotations

import numpy as np


def pack(items: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in items], out=offsets[1:])
    return np.frombuffer(b"".join(items), dtype=np.uint8), offsets


def unpack(blob: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    raw = blob.tobytes()
    return [raw[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def pack_strings(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return pack([s.encode("utf-8", "surrogatepass") for s in items])


def unpack_strings(blob: np.ndarray, offsets: np.ndarray) -> list[str]:
    return [b.decode("utf-8", "surrogatepass") for b in unpack(blob, offsets)]
