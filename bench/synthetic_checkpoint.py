"""Synthetic checkpoints of real shapes (Llama-3-8B: 128,256 x 4,096, bf16, untied, 4 shards), written
a block of rows at a time so that writing one never holds more than one bf16 matrix. A few hundred
*planted* under-trained rows are drawn near a common vector of tiny norm, as real under-trained rows
look; every other row is Gaussian. The tokenizer is a word-level vocabulary of the same size (every
token decodes and re-encodes to itself), so the token table is real but cheap. `write_gguf` writes the
same matrices as a quantised GGUF file (Q4_K by llama.cpp's own quantiser, as real files are made)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

SHAPES = {"8b": (128_256, 4_096), "70b": (128_256, 8_192)}
INPUT, OUTPUT = "model.embed_tokens.weight", "lm_head.weight"


@dataclass
class Synthetic:
    folder: Path
    rows: int
    dim: int
    planted: np.ndarray


def _matrix(rows: int, dim: int, planted: np.ndarray, seed: int, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty((rows, dim), dtype=dtype)
    step = max(1, 2**26 // (4 * dim))
    for first in range(0, rows, step):
        out[first:first + step] = (0.02 * torch.randn((min(step, rows - first), dim), generator=gen)).to(dtype)
    common = 1e-3 * torch.randn(dim, generator=gen)
    out[torch.from_numpy(planted)] = (common + 1e-4 * torch.randn((len(planted), dim), generator=gen)).to(dtype)
    return out


def _tokenizer(folder: Path, rows: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(rows)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))


def _planted(rows: int, n_planted: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(np.arange(1000, rows), n_planted, replace=False))


def write_checkpoint(folder: Path, rows: int, dim: int, n_planted: int = 300, shards: int = 4,
                     dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Synthetic:
    """An untied Llama-shaped folder: the input embedding in the first shard, the output matrix in
    the last, small placeholder tensors in the shards between; an index names them all."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    planted = _planted(rows, n_planted, seed)
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    weight_map: dict[str, str] = {}
    for i, name in enumerate(names):
        if i == 0:
            state = {INPUT: _matrix(rows, dim, planted, seed + 1, dtype)}
        elif i == shards - 1:
            state = {OUTPUT: _matrix(rows, dim, planted, seed + 2, dtype), "model.norm.weight": torch.ones(dim, dtype=dtype)}
        else:
            state = {f"model.layers.{i}.mlp.up_proj.weight": torch.zeros((64, dim), dtype=dtype)}
        save_file(state, str(folder / name), metadata={"format": "pt"})
        weight_map.update({key: name for key in state})
        del state
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": rows,
              "hidden_size": dim, "tie_word_embeddings": False}
    (folder / "config.json").write_text(json.dumps(config))
    _tokenizer(folder, rows)
    return Synthetic(folder, rows, dim, planted)


def _ggml_quantiser(qtype: Any):
    """llama.cpp's quantiser (`ggml_quantize_chunk`, from llama-cpp-python's bundled ggml) for the
    types `gguf`'s own quantiser cannot write, such as the K-quants."""
    import ctypes

    try:
        import llama_cpp
    except ImportError:
        raise SystemExit(f"writing {qtype.name} needs llama.cpp's quantiser: pip install "
                         f"glitchview[llamacpp], or pick a type gguf can write (Q4_0, Q8_0, ...)") from None
    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    chunk = lib.ggml_quantize_chunk
    chunk.restype = ctypes.c_size_t
    chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                      ctypes.c_int64, ctypes.c_void_p]

    def quantise(block: np.ndarray, out: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.float32)
        written = chunk(qtype.value, block.ctypes.data, out.ctypes.data, 0, block.shape[0], block.shape[1], None)
        assert written == out.nbytes, (written, out.nbytes)

    return quantise


def _quantised(matrix: torch.Tensor, qtype: Any) -> np.ndarray:
    """`matrix` quantised a block of rows at a time (the float32 copy never exceeds one block)."""
    from gguf import GGML_QUANT_SIZES, quants

    rows, dim = matrix.shape
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    out = np.empty((rows, dim // block * block_bytes), dtype=np.uint8)
    try:
        quants.quantize(np.zeros((1, dim), dtype=np.float32), qtype)
        quantise = None
    except NotImplementedError:
        quantise = _ggml_quantiser(qtype)
    step = max(1, 2**26 // (4 * dim))
    for first in range(0, rows, step):
        part = matrix[first:first + step].float().numpy()
        if quantise is None:
            out[first:first + step] = quants.quantize(part, qtype)
        else:
            quantise(part, out[first:first + step])
    return out


def _letters(k: int) -> str:
    """`k` in base 26, a = 0, no leading a (except for 0 itself)."""
    return ("" if k < 26 else _letters(k // 26)) + chr(ord("a") + k % 26)


def write_gguf(path: Path, rows: int, dim: int, qtype: Any = None, n_planted: int = 300, seed: int = 0) -> Synthetic:
    """The matrices of `write_checkpoint` (same seeds, so the same planted rows and bf16 values), as an
    untied llama GGUF with `token_embd.weight` and `output.weight` in `qtype` (Q4_K by default). The
    tokenizer is byte-level BPE whose merges spell every word left to right: "W" and "a".."z", then
    "W" + the token's number in letters, so each token decodes and re-encodes to itself; the last
    token is the end-of-text control token. No blocks: the file is for analysis, not for running."""
    import gguf

    qtype = gguf.GGMLQuantizationType.Q4_K if qtype is None else qtype
    planted = _planted(rows, n_planted, seed)
    words = [f"W{_letters(k)}" for k in range(rows - 28)]
    tokens = ["W", *(chr(ord("a") + i) for i in range(26)), *words, "<|endoftext|>"]
    merges = [f"{'W' if k < 26 else words[k // 26]} {word[-1]}" for k, word in enumerate(words)]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"synthetic-llama-{rows}x{dim}")
    writer.add_context_length(8192)
    writer.add_embedding_length(dim)
    writer.add_block_count(0)
    writer.add_vocab_size(rows)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * (rows - 1) + [gguf.TokenType.CONTROL])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(rows - 1)
    for name, offset in (("token_embd.weight", 1), ("output.weight", 2)):
        matrix = _matrix(rows, dim, planted, seed + offset, torch.bfloat16)
        writer.add_tensor(name, _quantised(matrix, qtype), raw_dtype=qtype)
        del matrix
    writer.add_tensor("output_norm.weight", np.ones(dim, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Synthetic(path, rows, dim, planted)
