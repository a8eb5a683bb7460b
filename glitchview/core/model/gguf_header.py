"""Our own bounded reader of a GGUF file's header, run before the file reaches `gguf` or transformers.

A GGUF header is a list of counts and lengths that a reader trusts to allocate: a 133-byte file can
declare an array of 2^60 elements. Here every count and length is checked against the bytes left in
the file before anything is read, arrays are skipped rather than built, nesting and the total of
metadata entries are capped, the tensor table must fit in the file, and the parse checks for
cancellation as it goes. What it returns is what GlitchView needs before a conversion: the
architecture, the tensors' sizes, and how much metadata the converter will have to build."""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import ModelLoadError
from ..progress import CancelToken

MAGIC = b"GGUF"
VERSIONS = (2, 3)  # version 1 (32-bit counts) predates every model transformers can read
MAX_ARRAY_DEPTH = 3
MAX_METADATA_ITEMS = 2**25  # array elements over all metadata; real vocabularies need a few million
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_KEPT_STRING = 4096  # longer metadata strings are checked and skipped, not kept
CANCEL_EVERY = 65536

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Damaged(Exception):
    """The header contradicts itself or the file (turned into a ModelLoadError with the file name)."""


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    n_elements: int
    n_bytes: int


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, object]  # scalars and short strings; arrays as their length
    tensors: list[TensorInfo] = field(default_factory=list)
    metadata_items: int = 0  # array elements in the metadata (what a converter builds objects for)
    data_start: int = 0  # where the tensor data begins (tensor offsets count from here)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def n_elements(self) -> int:
        return sum(t.n_elements for t in self.tensors)


class _Cursor:
    """Reads little-endian values from a memory map, refusing any read past the end."""

    def __init__(self, data: mmap.mmap | bytes, cancel: CancelToken) -> None:
        self.data, self.pos, self.cancel, self.items = data, 0, cancel, 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left:
            raise _Damaged(f"{what} needs {n:,} bytes but only {self.left:,} are left in the file")

    def scalar(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        self.need(size, what)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self, what: str) -> str | None:
        """A length-prefixed UTF-8 string (None when it is too long to keep: it is skipped)."""
        length = self.scalar("<Q", f"the length of {what}")
        self.need(length, what)
        raw = bytes(self.data[self.pos:self.pos + length]) if length <= MAX_KEPT_STRING else None
        self.pos += length
        return None if raw is None else raw.decode("utf-8", "replace")

    def count_items(self, n: int) -> None:
        self.items += n
        if self.items > MAX_METADATA_ITEMS:
            raise _Damaged(f"the metadata declares more than {MAX_METADATA_ITEMS:,} array elements")


def _value(cur: _Cursor, kind: int, key: str, depth: int = 0) -> object:
    if kind in _SCALARS:
        return cur.scalar(_SCALARS[kind], f"the value of {key}")
    if kind == _STRING:
        return cur.string(f"the value of {key}")
    if kind != _ARRAY:
        raise _Damaged(f"metadata {key} has unknown value type {kind}")
    if depth >= MAX_ARRAY_DEPTH:
        raise _Damaged(f"metadata {key} nests arrays more than {MAX_ARRAY_DEPTH} deep")
    item_kind = cur.scalar("<I", f"the item type of {key}")
    count = cur.scalar("<Q", f"the length of {key}")
    _skip_array(cur, item_kind, count, key, depth)
    return count


def _skip_array(cur: _Cursor, kind: int, count: int, key: str, depth: int) -> None:
    """Step over an array without building it, every length checked before it is trusted."""
    cur.count_items(count)
    if kind in _SCALARS:
        size = struct.calcsize(_SCALARS[kind])
        cur.need(count * size, f"array {key} ({count:,} items)")
        cur.pos += count * size
        return
    smallest = {_STRING: 8, _ARRAY: 12}.get(kind)
    if smallest is None:
        raise _Damaged(f"array {key} has unknown item type {kind}")
    cur.need(count * smallest, f"array {key} ({count:,} items)")
    for i in range(count):
        if i % CANCEL_EVERY == 0:
            cur.cancel.check()
        if kind == _STRING:
            length = cur.scalar("<Q", f"an item of {key}")
            cur.need(length, f"an item of {key}")
            cur.pos += length
        else:
            _value(cur, _ARRAY, key, depth + 1)


@lru_cache(maxsize=1)
def _block_sizes() -> dict[int, tuple[int, int]]:
    """ggml type -> (elements per block, bytes per block), from the `gguf` package's table."""
    from gguf import GGML_QUANT_SIZES

    return {int(k): v for k, v in GGML_QUANT_SIZES.items()}


def _tensor(cur: _Cursor, index: int) -> TensorInfo:
    name = cur.string(f"the name of tensor {index}") or f"#{index}"
    n_dims = cur.scalar("<I", f"the rank of tensor {name}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise _Damaged(f"tensor {name} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
    shape = tuple(cur.scalar("<Q", f"the shape of tensor {name}") for _ in range(n_dims))
    ggml_type = cur.scalar("<I", f"the type of tensor {name}")
    offset = cur.scalar("<Q", f"the offset of tensor {name}")
    if ggml_type not in _block_sizes():
        raise _Damaged(f"tensor {name} has unknown type {ggml_type}")
    block, block_bytes = _block_sizes()[ggml_type]
    n_elements = 1
    for dim in shape:
        n_elements *= dim
    if shape[0] % block:
        raise _Damaged(f"tensor {name}'s rows ({shape[0]}) are not whole blocks of {block}")
    return TensorInfo(name, shape, ggml_type, offset, n_elements, n_elements // block * block_bytes)


def _parse(cur: _Cursor) -> GGUFHeader:
    if bytes(cur.data[:4]) != MAGIC:
        raise _Damaged("it is not a GGUF file (its first bytes are not 'GGUF')")
    cur.pos = 4
    version = cur.scalar("<I", "the version")
    if version not in VERSIONS:
        raise _Damaged(f"it has GGUF version {version}; versions {VERSIONS[0]}-{VERSIONS[-1]} are supported")
    n_tensors = cur.scalar("<Q", "the tensor count")
    n_keys = cur.scalar("<Q", "the metadata count")
    cur.need(n_keys * 13, f"{n_keys:,} metadata entries")  # key length, type and the smallest value
    header = GGUFHeader(version, {})
    for i in range(n_keys):
        key = cur.string(f"metadata key {i}") or f"#{i}"
        kind = cur.scalar("<I", f"the value type of {key}")
        header.metadata[key] = _value(cur, kind, key)
    cur.need(n_tensors * 24, f"{n_tensors:,} tensor entries")  # name length, rank, one dim, type, offset
    for i in range(n_tensors):
        if i % CANCEL_EVERY == 0:
            cur.cancel.check()
        header.tensors.append(_tensor(cur, i))
    header.metadata_items = cur.items
    _check_data(header, cur)
    return header


def _check_data(header: GGUFHeader, cur: _Cursor) -> None:
    """Every tensor's bytes must lie inside the data section at the end of the file."""
    alignment = header.metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or not 1 <= alignment <= 2**20:
        raise _Damaged(f"general.alignment is {alignment!r}")
    start = header.data_start = -(-cur.pos // alignment) * alignment
    data_bytes = len(cur.data) - start
    for t in header.tensors:
        if t.offset % alignment or t.offset + t.n_bytes > data_bytes:
            raise _Damaged(f"tensor {t.name} ({t.n_bytes:,} bytes at {t.offset:,}) lies outside the file's "
                           f"{max(data_bytes, 0):,} bytes of tensor data")


def read_gguf_header(path: Path, cancel: CancelToken | None = None) -> GGUFHeader:
    """Parse and check the header of the GGUF file at `path` (a regular file), within its own bytes."""
    cancel = cancel or CancelToken()
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size == 0:
                raise _Damaged("the file is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse(_Cursor(data, cancel))
    except _Damaged as exc:
        raise ModelLoadError(f"cannot read GGUF file {path.name}: {exc}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
