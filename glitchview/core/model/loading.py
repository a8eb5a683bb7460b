"""Read a model's tokenizer and whole embedding matrices, without building the network.

Hugging Face folders are read directly: `config.json` as plain JSON, the embedding tensors
lazily from safetensors (or pickle-free `torch.load(weights_only=True)`), the tokenizer from
`tokenizer.json`. No code from the model folder ever runs. A GGUF file is read directly (see
`gguf_direct`: only its embedding matrices, its tokenizer cached by fingerprint); transformers'
whole-model conversion into a cache folder is done only when the network is built (`_cached_folder`).

Why over 350 lines: this is the one place every model form meets the checks a hostile file needs
(non-regular files, pickles, memory and disk caps, damaged configs, NaN rows); the readers
themselves live beside it (`gguf_header`, `gguf_direct`, `shards`). Splitting the checks from the
seams they guard would scatter them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..child import run_in_child
from ..errors import ModelLoadError, NoEmbeddingError, one_line
from ..progress import CancelToken, ProgressFn, no_progress
from .gguf_direct import open_gguf
from .gguf_header import GGUFHeader, read_gguf_header
from .memory import check_fits
from .shards import indexed_tensors, read_float32, stored_bytes
from .sources import ModelSource, cache_root, fingerprint, regular_file

CACHE_FORMAT = 3  # 2: config.json records the architecture; 3: and no GGUF quantization_config
_CACHE_MARKER = "glitchview-cache.json"
_INPUT_NAMES = re.compile(r"(^|\.)(embed_tokens|word_embeddings|wte|tok_embeddings|embed_in|shared)\.weight$")
_OUTPUT_NAMES = re.compile(r"^(model\.|transformer\.)?(lm_head|embed_out)\.weight$|^output\.weight$")
_GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


@dataclass
class LoadedModel:
    """A model as GlitchView needs it: embedding matrices, tokenizer (read on first use: a cached
    token table makes it unnecessary for an analysis) and what is known about it."""

    source: ModelSource
    fingerprint: str
    folder: Path
    input_embeddings: np.ndarray
    output_embeddings: np.ndarray | None  # None when tied to the input embeddings
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @cached_property
    def tokenizer(self) -> Any:
        """The fast (Rust) `tokenizers.Tokenizer` of the model."""
        return read_tokenizer(self.folder)

    @property
    def tied(self) -> bool:
        return self.output_embeddings is None

    @property
    def unembedding(self) -> np.ndarray:
        """The output (unembedding) matrix; the input matrix when the two are tied."""
        return self.input_embeddings if self.output_embeddings is None else self.output_embeddings

    @cached_property
    def nonfinite(self) -> np.ndarray:
        """Rows holding NaN or infinity in either matrix (one pass over the matrices, kept)."""
        return nonfinite_rows(self.input_embeddings, self.output_embeddings)

    @cached_property
    def finite(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The matrices as the scores read them (see `finite_matrices`), computed once per model."""
        return _repaired_matrices(self)

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures") or [self.config.get("model_type", "unknown")]
        return str(archs[0])

    @property
    def generative(self) -> bool:
        """Whether the model has a language-model head (can be prompted)."""
        archs = self.config.get("architectures")
        if archs:
            return any(str(a).endswith(_GENERATIVE_SUFFIXES) for a in archs)
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        return self.config.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def _read_config(folder: Path) -> dict[str, Any]:
    """`config.json` as a checked dict: a list, null, absurd nesting or a wrong field type is a clear
    error here, not an AttributeError later."""
    path = folder / "config.json"
    if not path.exists():
        return {}
    try:
        config = json.loads(regular_file(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else one_line(exc)
        raise ModelLoadError(f"cannot read {path}: {reason}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a JSON object (it holds a {type(config).__name__})")
    archs = config.get("architectures")
    if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        raise ModelLoadError(f"{path}: 'architectures' must be a list of class names, not {archs!r:.60}")
    if not isinstance(config.get("model_type", ""), str):
        raise ModelLoadError(f"{path}: 'model_type' must be a string, not {config['model_type']!r:.60}")
    return config


def _weight_files(folder: Path) -> list[Path]:
    safetensors = sorted(folder.glob("*.safetensors"))
    pickled = sorted([*folder.glob("*.bin"), *folder.glob("*.pt"), *folder.glob("*.pth")])
    found = safetensors or pickled
    if not found:
        raise ModelLoadError(f"no weights in {folder}: expected *.safetensors (or pytorch_model.bin)")
    return [regular_file(path) for path in found]


def _tensor_names(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise ModelLoadError(f"cannot read {path.name}: {_first_line(exc)}") from None
    return list(_load_pickle_free(path))


def _load_pickle_free(path: Path) -> dict[str, Any]:
    """Read a .bin/.pt state dict with `weights_only=True`: tensors only, no arbitrary objects.
    The zip format (torch >= 1.6) is memory-mapped; a legacy file is read whole, so it must fit first."""
    import torch

    zipped = zipfile.is_zipfile(path)
    if not zipped:
        check_fits(path.stat().st_size, f"reading {path.name} (a legacy, non-zip torch file)",
                   "convert it to safetensors or use a machine with more memory")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipped)
    except Exception as exc:  # torch's own message advises weights_only=False: never shown
        reason = "it holds pickled objects" if isinstance(exc, pickle.UnpicklingError) else _first_line(exc)
        raise ModelLoadError(f"refusing or unable to read {path.name} safely: only plain tensors are accepted, "
                             f"never pickled code ({reason})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path.name} holds no state dict of tensors")
    return state


def _first_line(exc: BaseException) -> str:
    """The gist of a library's exception: its type and first line, without colour codes or advice."""
    text = one_line(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


_STORED_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1}


def _tensor_bytes(path: Path, name: str) -> int:
    """Bytes a tensor takes once read as float32 (plus what is read alongside), from the safetensors
    header or the memory-mapped torch file: nothing of the tensor is read."""
    if path.suffix != ".safetensors":
        tensor = _load_pickle_free(path)[name]
        return tensor.numel() * (4 + tensor.element_size())
    return stored_bytes(path, name)


def _read_tensor(path: Path, name: str) -> np.ndarray:
    if path.suffix == ".safetensors":
        return read_float32(path, name)
    return _load_pickle_free(path)[name].float().numpy()


def _pick(names: dict[str, Path], pattern: re.Pattern[str]) -> tuple[str, Path] | None:
    matches = sorted((n for n in names if pattern.search(n)), key=lambda n: (n.count("."), n))
    return (matches[0], names[matches[0]]) if matches else None


def read_embeddings(folder: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read the input embedding matrix and, when untied, the output matrix, each whole."""
    names = indexed_tensors(folder)  # a sharded model: its index names every tensor, no shard opened
    for path in [] if names else _weight_files(folder):
        for name in _tensor_names(path):
            names.setdefault(name, path)
    found_in = _pick(names, _INPUT_NAMES)
    found_out = _pick(names, _OUTPUT_NAMES)
    if found_in is None and found_out is None:
        raise NoEmbeddingError(f"the weights in {folder} hold no token-embedding matrix "
                               f"(looked for *.embed_tokens/word_embeddings/wte.weight among "
                               f"{len(names)} tensors)")
    needed = sum(_tensor_bytes(path, name) for name, path in filter(None, (found_in, found_out)))
    check_fits(needed, f"reading the embedding matrices of {folder.name}",
               "close other programs or use a machine with more memory")
    if found_in is None:  # only an output matrix: score it as both
        return _read_tensor(found_out[1], found_out[0]), None
    inputs = _read_tensor(found_in[1], found_in[0])
    if inputs.ndim != 2:
        raise NoEmbeddingError(f"tensor {found_in[0]} is not a matrix (shape {inputs.shape})")
    if found_out is None:
        return inputs, None
    outputs = _read_tensor(found_out[1], found_out[0])
    if outputs.shape == inputs.shape and np.array_equal(outputs, inputs):
        return inputs, None
    return inputs, outputs


def _check_tokenizer_files(folder: Path) -> None:
    """Refuse a folder without tokenizer files, or whose tokenizer.json is not a regular file (the
    tokenizer is read later, in a child process, where a FIFO would block it for ever)."""
    path = folder / "tokenizer.json"
    if os.path.lexists(path):
        regular_file(path)
    elif not any(folder.glob("vocab.*")) and not any(folder.glob("*.model")):
        raise ModelLoadError(f"no tokenizer in {folder} (expected tokenizer.json)")


def read_tokenizer(folder: Path) -> Any:
    """The fast (Rust) tokenizer of a folder; never runs tokenizer code from the folder."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    try:
        if path.exists():
            tokenizer = Tokenizer.from_file(str(regular_file(path)))
        else:
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
            tokenizer = getattr(hf, "backend_tokenizer", None)
            if tokenizer is None:
                raise ModelLoadError(f"the tokenizer in {folder} has no fast (tokenizer.json) form")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot read the tokenizer in {folder}: {_first_line(exc)}") from None
    tokenizer.no_padding()  # a saved padding/truncation setting would corrupt every re-encoding
    tokenizer.no_truncation()
    return tokenizer


def _convert_gguf(source: ModelSource, target: Path, progress: ProgressFn) -> None:
    """Dequantise a GGUF file with transformers and store it as a plain folder at `target`.
    Runs in a child process (see `_cached_folder`)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    folder, name = str(source.path.parent), source.path.name
    progress(0.05, f"reading the GGUF tokenizer of {name} (first open only)")
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # transformers draws its own tqdm bars
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
            progress(0.35, f"dequantising the GGUF weights of {name} (first open only)")
            try:
                model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, trust_remote_code=False,
                                                             dtype=torch.float32)
            except ValueError as exc:
                if "Unrecognized configuration class" not in str(exc):
                    raise
                model = AutoModel.from_pretrained(folder, gguf_file=name, trust_remote_code=False,
                                                  dtype=torch.float32)
    except Exception as exc:
        raise ModelLoadError(f"cannot read GGUF file {source.path}: {_first_line(exc)}") from None
    progress(0.8, "writing the dequantised weights to the cache")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        _write_cache(model, tokenizer, source, staging, target)
    except Exception as exc:  # disk full, read-only cache: safetensors raises its own error type
        raise ModelLoadError(f"cannot write the converted model to the cache {target.parent}: {_first_line(exc)} "
                             f"(is the disk full? GLITCHVIEW_CACHE_DIR moves the cache)") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_cache(model: Any, tokenizer: Any, source: ModelSource, staging: Path, target: Path) -> None:
    """Store a dequantised model in `staging` (safetensors, config, tokenizer), then move it to `target`."""
    import torch
    from safetensors.torch import save_file

    state: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:  # tied weights are stored once
            continue
        seen.add(tensor.data_ptr())
        state[key] = tensor.contiguous()
    save_file(state, str(staging / "model.safetensors"))
    model.config.architectures = [type(model).__name__]
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the cache holds plain dequantised weights
    (staging / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(str(staging))
    marker = {"format": CACHE_FORMAT, "source": str(source.path)}
    (staging / _CACHE_MARKER).write_text(json.dumps(marker))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


METADATA_ITEM_BYTES = 1024  # what the gguf reader builds per metadata array element (measured: ~1 kB)


def _gguf_dequantised_bytes(header: GGUFHeader) -> int:
    """Memory the one-off GGUF conversion needs: every tensor in float32, twice (transformers keeps
    the dequantised copy and the model), plus the reader's objects for the metadata arrays."""
    return 2 * 4 * header.n_elements + METADATA_ITEM_BYTES * header.metadata_items


def check_disk(folder: Path, needed: int, what: str) -> None:
    """Refuse before a long write that the disk holding `folder` has no room for."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ModelLoadError(f"{what} needs about {needed / 2**20:,.0f} MB of disk in {folder} but only "
                             f"{free / 2**20:,.0f} MB are free; free some space or set GLITCHVIEW_CACHE_DIR")


def _cached_folder(source: ModelSource, fp: str, progress: ProgressFn, cancel: CancelToken) -> tuple[Path, bool]:
    """The plain-folder form of a GGUF model, converting it on first use. Returns (folder, was_cached)."""
    target = cache_root() / "models" / fp
    marker = target / _CACHE_MARKER
    if marker.exists():
        try:
            if json.loads(marker.read_text()).get("format") == CACHE_FORMAT:
                return target, True
        except (OSError, ValueError):
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    header = read_gguf_header(source.path, cancel)
    check_fits(_gguf_dequantised_bytes(header), f"dequantising {source.path.name}",
               "the conversion holds the whole model in float32 once; use a machine with more memory")
    check_disk(target.parent, 4 * header.n_elements + source.path.stat().st_size // 8,
               f"caching the dequantised weights of {source.path.name}")
    run_in_child(_convert_gguf, (source, target), "GGUF conversion", progress, cancel)
    return target, False


def load_model(source: ModelSource, progress: ProgressFn = no_progress,
               cancel: CancelToken | None = None) -> LoadedModel:
    """Load tokenizer and embedding matrices of `source` (GGUF through the conversion cache)."""
    cancel = cancel or CancelToken()
    progress(0.0, f"fingerprinting {source.path.name}")
    fp = fingerprint(source)
    notes: list[str] = []
    if source.is_gguf:
        _check_gguf_header(source.path)
        folder, cached, matrices = open_gguf(source, fp, progress, cancel)
        notes.append("GGUF tokenizer read from the cache" if cached
                     else f"GGUF tokenizer built once; cached in {folder}")
    else:
        folder, matrices = source.path, None
    cancel.check()
    config = _read_config(folder)
    if config.get("auto_map") or config.get("trust_remote_code"):
        notes.append("config asks for custom code (auto_map); GlitchView never runs it and reads "
                     "the weights directly")
    _check_tokenizer_files(folder)
    cancel.check()
    progress(0.9, "reading the embedding matrices")
    inputs, outputs = matrices or read_embeddings(folder)
    model = LoadedModel(source, fp, folder, np.ascontiguousarray(inputs),
                        None if outputs is None else np.ascontiguousarray(outputs), config, notes)
    broken = int(model.nonfinite.sum())
    if broken == inputs.shape[0]:
        raise ModelLoadError(f"every row of the embedding matrix of {source.display_name} is NaN or infinite")
    if broken:
        notes.append(f"{broken} embedding rows hold NaN or infinite values: flagged 'nonfinite' and ranked first")
    progress(1.0, f"loaded {inputs.shape[0]} x {inputs.shape[1]} embeddings")
    return model


def nonfinite_rows(inputs: np.ndarray, outputs: np.ndarray | None = None) -> np.ndarray:
    """Rows holding NaN or infinity in either matrix: the most broken tokens of all, which are shown
    (flagged and ranked first), never a reason to refuse the model."""
    broken = ~np.isfinite(inputs).all(axis=1)
    if outputs is not None and outputs.shape[0] == inputs.shape[0]:
        broken |= ~np.isfinite(outputs).all(axis=1)
    return broken


def finite_matrices(model: LoadedModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input matrix, unembedding, nonfinite mask) for scoring: broken rows are replaced, in copies, by
    the mean of the finite rows, a neutral point that moves no cluster and no reference mean much;
    their scores are then set to the suspicious end (see `rank_broken_first`). Computed once per model:
    the early map, the analysis and later projections all read the same matrices."""
    return model.finite


def _repaired_matrices(model: LoadedModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    broken = model.nonfinite
    if not broken.any():
        return model.input_embeddings, model.unembedding, broken

    def repaired(matrix: np.ndarray) -> np.ndarray:
        out = matrix.copy()
        out[broken] = matrix[~broken].mean(axis=0)
        return out

    inputs = repaired(model.input_embeddings)
    return inputs, inputs if model.tied else repaired(model.output_embeddings), broken


def rank_broken_first(scores: np.ndarray, broken: np.ndarray, suspicious: str) -> np.ndarray:
    """`scores` with the broken rows at the suspicious end (-inf or +inf), so that they rank first."""
    if broken.any():
        scores = scores.copy()
        scores[broken] = -np.inf if suspicious == "low" else np.inf
    return scores


def _check_gguf_header(path: Path) -> None:
    """Fail fast, with a clear message, on a file that is not a GGUF model at all."""
    try:
        with regular_file(path).open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if magic != b"GGUF":
        what = "empty" if not magic else "not a GGUF file (its first bytes are not 'GGUF')"
        raise ModelLoadError(f"{path.name} is {what}")
