"""Read a GGUF file directly: only the token-embedding (and untied output) matrix, and the tokenizer.

An analysis needs one or two matrices, not the network, so the file is memory-mapped and only
`token_embd.weight` (and `output.weight` when the model is untied) is dequantised, in row chunks,
with the `gguf` package's own dequantisers. The header is parsed here rather than by
`gguf.GGUFReader`, which turns every one of a 262k vocabulary's strings into numpy views (15 s on
Gemma-3 on a 2-core machine, against ~0.3 s for this walk). The tokenizer is built once from the
metadata by transformers' GGUF converter, in a child process (it holds the GIL for seconds), and
cached with a small config in `cache_root()/models/<fingerprint>`: the same folder the whole-model
conversion uses, so that conversion can be done later, only when the network is needed."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..child import run_in_child
from ..errors import ModelLoadError, NoEmbeddingError, UnsupportedQuantizationError
from ..progress import CancelToken, ProgressFn
from .gguf_header import read_gguf_header
from .memory import check_fits
from .sources import ModelSource, cache_root

INPUT_TENSOR = "token_embd.weight"
OUTPUT_TENSOR = "output.weight"
METADATA_FORMAT = 1
METADATA_MARKER = "glitchview-gguf-metadata.json"
_CHUNK_BYTES = 64 * 2**20  # float32 output per dequantisation step: bounds the temporaries
_MODEL_TYPES = {"gemma3": "gemma3_text"}  # GGUF architecture -> transformers model_type, where they differ


@dataclass(frozen=True)
class GgufTensor:
    name: str
    shape: tuple[int, ...]  # numpy order (rows first)
    type_id: int
    offset: int  # from the start of the data section


@dataclass(frozen=True)
class GgufHeader:
    """What the file says about itself: scalar metadata, the tensor table, where the data starts."""

    metadata: dict[str, Any]
    tensors: dict[str, GgufTensor]
    data_start: int

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))


def read_header(path: Path, cancel: CancelToken | None = None) -> GgufHeader:
    """The header as this reader needs it, from the bounded, checked parse of `gguf_header` (every
    count and length checked against the file before anything is read; cancellable)."""
    checked = read_gguf_header(path, cancel)
    tensors = {t.name: GgufTensor(t.name, tuple(int(d) for d in reversed(t.shape)), t.ggml_type, t.offset)
               for t in checked.tensors}  # GGUF lists dimensions fastest first; numpy wants rows first
    return GgufHeader(checked.metadata, tensors, checked.data_start)


def _quant_type(path: Path, tensor: GgufTensor) -> Any:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType(tensor.type_id)
    except ValueError:
        raise UnsupportedQuantizationError(
            f"{path.name}: {tensor.name} has ggml type {tensor.type_id}, unknown to the installed gguf "
            f"package; update gguf or use a file with another quantisation") from None


def _layout(path: Path, tensor: GgufTensor) -> tuple[Any, int]:
    """(ggml type, bytes per stored row) of a matrix tensor, after checking its type and shape (no data read)."""
    from gguf import GGML_QUANT_SIZES

    qtype = _quant_type(path, tensor)
    if len(tensor.shape) != 2:
        raise NoEmbeddingError(f"{path.name}: {tensor.name} is not a matrix (shape {tensor.shape})")
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    if tensor.shape[1] % block:
        raise ModelLoadError(f"cannot read GGUF file {path}: {tensor.name} rows of {tensor.shape[1]} values "
                             f"are not whole {qtype.name} blocks of {block}")
    return qtype, tensor.shape[1] // block * block_bytes


def _fresh_float32(rows: int, cols: int) -> np.ndarray:
    """A float32 matrix on anonymous pages that carry no huge-page advice. numpy advises huge pages
    for large arrays; where the kernel then compacts memory on those faults (THP defrag=madvise, as
    on this project's machines), filling a fresh 2 GB output took 5.2-7.3 s against 3.5 s here."""
    pages = mmap.mmap(-1, max(rows * cols * 4, 1))
    return np.frombuffer(pages, dtype=np.float32, count=rows * cols).reshape(rows, cols)


def dequantise(path: Path, header: GgufHeader, tensor: GgufTensor,
               cancel: CancelToken | None = None) -> np.ndarray:
    """One 2-D tensor as float32, dequantised from the memory map in row chunks."""
    from importlib.metadata import version

    from gguf.quants import dequantize

    qtype, row_bytes = _layout(path, tensor)
    rows, cols = tensor.shape
    start = header.data_start + tensor.offset
    blob = np.memmap(path, mode="r", dtype=np.uint8)
    if start + rows * row_bytes > len(blob):
        raise ModelLoadError(f"cannot read GGUF file {path}: {tensor.name} runs past the end of the "
                             f"file (truncated?)")
    stored = blob[start:start + rows * row_bytes].reshape(rows, row_bytes)
    out = _fresh_float32(rows, cols)
    step = max(1, _CHUNK_BYTES // (4 * cols))
    try:
        for first in range(0, rows, step):
            if cancel is not None:
                cancel.check()
            out[first:first + step] = dequantize(stored[first:first + step], qtype)
    except NotImplementedError:
        raise UnsupportedQuantizationError(
            f"{path.name}: {tensor.name} is stored as {qtype.name}, which gguf {version('gguf')} cannot "
            f"dequantise; use a file with another quantisation of the embeddings") from None
    return out


def _embedding_tensors(path: Path, header: GgufHeader) -> list[GgufTensor]:
    """`token_embd.weight` and `output.weight` where present, checked to be readable matrices."""
    wanted = [header.tensors[n] for n in (INPUT_TENSOR, OUTPUT_TENSOR) if n in header.tensors]
    if not wanted:
        raise NoEmbeddingError(f"{path.name} holds no {INPUT_TENSOR} (nor {OUTPUT_TENSOR}) among its "
                               f"{len(header.tensors)} tensors")
    for tensor in wanted:
        _layout(path, tensor)
    return wanted


def read_embeddings(path: Path, header: GgufHeader,
                    cancel: CancelToken | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """`token_embd.weight` and, when present and different, `output.weight`, as float32."""
    wanted = _embedding_tensors(path, header)
    needed = sum(2 * 4 * int(np.prod(t.shape)) for t in wanted)  # the matrix and one chunked copy's slack
    check_fits(needed, f"dequantising the embedding matrices of {path.name}",
               "close other programs or use a machine with more memory")
    matrices = [dequantise(path, header, t, cancel) for t in wanted]
    inputs = matrices[0]
    if len(matrices) == 1 or _same(matrices[1], inputs):
        return inputs, None
    return inputs, matrices[1]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two matrices are equal, deciding on the first rows when they differ there (untied
    models), without a full pass over both."""
    return a.shape == b.shape and np.array_equal(a[:64], b[:64]) and np.array_equal(a, b)


def _config(header: GgufHeader) -> dict[str, Any]:
    """The few config entries GlitchView reads (the architecture decides whether it can generate)."""
    arch = header.architecture
    emb = header.tensors.get(INPUT_TENSOR) or header.tensors.get(OUTPUT_TENSOR)
    return {"model_type": _MODEL_TYPES.get(arch, arch), "gguf_architecture": arch,
            "vocab_size": emb.shape[0] if emb else header.metadata.get(f"{arch}.vocab_size"),
            "hidden_size": header.metadata.get(f"{arch}.embedding_length"),
            "tie_word_embeddings": OUTPUT_TENSOR not in header.tensors}


def _write_metadata(path: Path, staging: Path, config: dict[str, Any], progress: ProgressFn) -> None:
    """Child-process step: the fast tokenizer from the GGUF metadata, and the config, into `staging`."""
    from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES

    progress(0.2, f"building the tokenizer of {path.name} from its metadata (first open only)")
    try:
        architecture, tokenizer_dict, _ = get_gguf_tokenizer(str(path))
        tokenizer, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    except Exception as exc:
        raise ModelLoadError(f"cannot read GGUF file {path}: no tokenizer can be built from its "
                             f"metadata ({exc})") from exc
    tokenizer.save(str(staging / "tokenizer.json"))
    model_type = config["model_type"]
    head = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type) or MODEL_MAPPING_NAMES.get(model_type)
    if head:
        config = {**config, "architectures": [head]}
    (staging / "config.json").write_text(json.dumps(config, indent=2))


def metadata_ready(target: Path) -> bool:
    """Whether `target` holds a tokenizer and config for this file: from this module or from the
    whole-model conversion (whose folder must never be replaced by this lighter one)."""
    from .loading import _CACHE_MARKER

    if not (target / "tokenizer.json").exists() or not (target / "config.json").exists():
        return False
    if (target / _CACHE_MARKER).exists():
        return True
    try:
        return json.loads((target / METADATA_MARKER).read_text()).get("format") == METADATA_FORMAT
    except (OSError, ValueError):
        return False


def open_gguf(source: ModelSource, fp: str, progress: ProgressFn,
              cancel: CancelToken) -> tuple[Path, bool, tuple[np.ndarray, np.ndarray | None]]:
    """(cache folder with tokenizer.json + config.json, whether it was cached, the matrices)."""
    header = read_header(source.path, cancel)
    _embedding_tensors(source.path, header)  # a missing matrix or a bad type fails before any work starts
    target = cache_root() / "models" / fp
    cached = metadata_ready(target)
    stop = CancelToken(cancel)  # ends the tokenizer's child when the user cancels or the dequantisation fails
    with ThreadPoolExecutor(1, thread_name_prefix="gguf-tokenizer") as pool:
        building = None if cached else pool.submit(_build_metadata, source.path, header, target, progress, stop)
        try:
            progress(0.05, f"dequantising {INPUT_TENSOR} of {source.path.name}")
            matrices = read_embeddings(source.path, header, cancel)
        except BaseException:
            stop.cancel()
            raise
    if building is not None:
        building.result()  # its own error (a tokenizer that cannot be built) is raised here
    cancel.check()
    return target, cached, matrices


def _build_metadata(path: Path, header: GgufHeader, target: Path, progress: ProgressFn, cancel: CancelToken) -> None:
    """The tokenizer and config into `target`, built in a child process on the other core while the
    matrices are dequantised here, and moved into place only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        run_in_child(_write_metadata, (path, staging, _config(header)), "GGUF tokenizer", progress, cancel)
        marker = {"format": METADATA_FORMAT, "source": str(path)}
        (staging / METADATA_MARKER).write_text(json.dumps(marker))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_network_weights(source: ModelSource, fp: str, folder: Path, progress: ProgressFn,
                           cancel: CancelToken | None = None) -> Path:
    """The folder with the whole network's weights: for a GGUF, converted now (once), only when the
    network is needed (verification, prompting), never for an analysis."""
    if not source.is_gguf or (folder / "model.safetensors").exists():
        return folder
    from .loading import _cached_folder

    return _cached_folder(source, fp, progress, cancel or CancelToken())[0]
