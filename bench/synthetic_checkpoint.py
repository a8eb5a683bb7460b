"""Synthetic checkpoints of real shapes (Llama-3-8B: 128,256 x 4,096, bf16, untied, 4 shards), written
a block of rows at a time so that writing one never holds more than one bf16 matrix. A few hundred
*planted* under-trained rows are drawn near a common vector of tiny norm, as real under-trained rows
look; every other row is Gaussian. The tokenizer is a word-level vocabulary of the same size (every
token decodes and re-encodes to itself), so the token table is real but cheap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


def write_checkpoint(folder: Path, rows: int, dim: int, n_planted: int = 300, shards: int = 4,
                     dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Synthetic:
    """An untied Llama-shaped folder: the input embedding in the first shard, the output matrix in
    the last, small placeholder tensors in the shards between; an index names them all."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    planted = np.sort(np.random.default_rng(seed).choice(np.arange(1000, rows), n_planted, replace=False))
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
