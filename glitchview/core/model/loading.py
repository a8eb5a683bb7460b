"""Read a model's tokenizer and whole embedding matrices, without building the network.

Hugging Face folders are read directly: `config.json` as plain JSON, the embedding tensors
lazily from safetensors (or pickle-free `torch.load(weights_only=True)`), the tokenizer from
`tokenizer.json`. No code from the model folder ever runs. A GGUF file is read directly (see
`gguf_direct`: only its embedding matrices, its tokenizer cached by fingerprint); transformers'
whole-model conversion into a cache folder is done only when the network is built (`_cached_folder`)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..child import run_in_child
from ..errors import ModelLoadError, NoEmbeddingError
from ..progress import CancelToken, ProgressFn, no_progress
from .memory import check_fits
from .gguf_direct import open_gguf
from .shards import indexed_tensors, read_float32, stored_bytes
from .sources import ModelSource, cache_root, fingerprint

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
    path = folder / "config.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc


def _weight_files(folder: Path) -> list[Path]:
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        return safetensors
    pickled = sorted([*folder.glob("*.bin"), *folder.glob("*.pt"), *folder.glob("*.pth")])
    if pickled:
        return pickled
    raise ModelLoadError(f"no weights in {folder}: expected *.safetensors (or pytorch_model.bin)")


def _tensor_names(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise ModelLoadError(f"cannot read {path.name}: {exc}") from exc
    return list(_load_pickle_free(path))


def _load_pickle_free(path: Path) -> dict[str, Any]:
    """Read a .bin/.pt state dict with `weights_only=True`: tensors only, no arbitrary objects."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ModelLoadError(f"refusing or unable to read {path.name} safely "
                             f"(only plain tensors are accepted, never pickled code): {exc}") from exc
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path.name} holds no state dict of tensors")
    return state


def _tensor_bytes(path: Path, name: str) -> int:
    """Bytes a tensor takes once read as float32 (plus one block being converted), from the header."""
    if path.suffix != ".safetensors":
        return 0  # pickle-free .bin files are memory-mapped; nothing cheap to read first
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


def read_tokenizer(folder: Path) -> Any:
    """The fast (Rust) tokenizer of a folder; never runs tokenizer code from the folder."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    try:
        if path.exists():
            tokenizer = Tokenizer.from_file(str(path))
        else:
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
            tokenizer = getattr(hf, "backend_tokenizer", None)
            if tokenizer is None:
                raise ModelLoadError(f"the tokenizer in {folder} has no fast (tokenizer.json) form")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot read the tokenizer in {folder}: {exc}") from exc
    tokenizer.no_padding()  # a saved padding/truncation setting would corrupt every re-encoding
    tokenizer.no_truncation()
    return tokenizer


def _convert_gguf(source: ModelSource, target: Path, progress: ProgressFn) -> None:
    """Dequantise a GGUF file with transformers and store it as a plain folder at `target`.
    Runs in a child process (see `_cached_folder`)."""
    import torch
    from safetensors.torch import save_file
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
        raise ModelLoadError(f"cannot read GGUF file {source.path}: {exc}") from exc
    progress(0.8, "writing the dequantised weights to the cache")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
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
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _gguf_dequantised_bytes(path: Path) -> int:
    """Memory the one-off GGUF conversion needs: every tensor in float32, twice (transformers keeps
    the dequantised copy and the model), estimated from the file's tensor table."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        return 2 * 4 * sum(int(t.n_elements) for t in reader.tensors)
    except Exception as exc:  # the reader rejects truncated or foreign files
        raise ModelLoadError(f"cannot read GGUF file {path}: {exc}") from exc


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
    check_fits(_gguf_dequantised_bytes(source.path), f"dequantising {source.path.name}",
               "the conversion holds the whole model in float32 once; use a machine with more memory")
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
    if not (folder / "tokenizer.json").exists() and not any(folder.glob("vocab.*")) \
            and not any(folder.glob("*.model")):
        raise ModelLoadError(f"no tokenizer in {folder} (expected tokenizer.json)")
    cancel.check()
    progress(0.9, "reading the embedding matrices")
    inputs, outputs = matrices or read_embeddings(folder)
    if not np.isfinite(inputs).all() or (outputs is not None and not np.isfinite(outputs).all()):
        raise ModelLoadError(f"the embedding matrix of {source.display_name} holds NaN or infinite values")
    progress(1.0, f"loaded {inputs.shape[0]} x {inputs.shape[1]} embeddings")
    return LoadedModel(source, fp, folder, np.ascontiguousarray(inputs),
                       None if outputs is None else np.ascontiguousarray(outputs), config, notes)


def _check_gguf_header(path: Path) -> None:
    """Fail fast, with a clear message, on a file that is not a GGUF model at all."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if magic != b"GGUF":
        what = "empty" if not magic else "not a GGUF file (its first bytes are not 'GGUF')"
        raise ModelLoadError(f"{path.name} is {what}")
