"""Tiny, deterministic models written to a folder in the three forms GlitchView reads: a Hugging
Face folder (tied), one with untied embeddings, and a GGUF file written with the `gguf` package.

Each model has a real byte-level BPE tokenizer trained on a small corpus, and a few *planted
glitch rows*: embedding rows left at a tiny shared value, as barely-trained tokens are."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CORPUS = [
    "The weather is nice today and the sun is shining over the quiet town.",
    "I like to eat bread with butter for breakfast, and my favorite color is blue.",
    "def compute_total(values): return sum(value for value in values if value > 0)",
    "Researchers study tokens that models cannot repeat, such as rare strings.",
    "Numbers like 12345 and 2024 appear in dates, prices and phone numbers.",
] * 20
PLANTED = (40, 41, 42, 43, 44, 45)


@dataclass
class TinyModel:
    path: Path
    vocab_size: int
    embeddings: np.ndarray
    unembedding: np.ndarray | None
    planted: tuple[int, ...]


def train_tokenizer(vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def untrained_ids(tok) -> list[int]:
    """The planted glitch rows plus the byte tokens that never occur in UTF-8 (unused in training)."""
    table = pre_tokenizers_alphabet_map()
    never = [0xC0, 0xC1, *range(0xF5, 0x100)]
    return sorted({*PLANTED, *(tok.token_to_id(table[b]) for b in never)})


def pre_tokenizers_alphabet_map() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def _llama(vocab_size: int, tied: bool, seed: int, untrained: list[int]):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb.normal_(0.0, 1.0)
        emb[untrained] = 0.01 + 0.001 * torch.randn(len(untrained), emb.shape[1])
        if not tied:
            model.lm_head.weight.normal_(0.0, 1.0)
            model.lm_head.weight[untrained] = 0.02 + 0.001 * torch.randn(len(untrained), emb.shape[1])
    return model


def write_hf_folder(folder: Path, tied: bool = True, seed: int = 0) -> TinyModel:
    """A Llama model with random weights and a trained tokenizer, saved as a HF folder."""
    from transformers import PreTrainedTokenizerFast

    tok = train_tokenizer()
    model = _llama(tok.get_vocab_size(), tied, seed, untrained_ids(tok))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>").save_pretrained(folder)
    emb = model.get_input_embeddings().weight.detach().numpy().copy()
    unemb = None if tied else model.lm_head.weight.detach().numpy().copy()
    return TinyModel(folder, tok.get_vocab_size(), emb, unemb, PLANTED)


def add_matrix(writer, name: str, matrix: np.ndarray, qtype=None) -> None:
    """Add a float matrix to a GGUF writer, quantised to `qtype` by gguf's own quantiser."""
    from gguf import GGMLQuantizationType, quants

    if qtype is None or qtype == GGMLQuantizationType.F32:
        writer.add_tensor(name, matrix.astype(np.float32))
    else:
        writer.add_tensor(name, quants.quantize(matrix.astype(np.float32), qtype), raw_dtype=qtype)


def write_matrix_gguf(path: Path, inputs: np.ndarray, qtype=None, outputs: np.ndarray | None = None) -> Path:
    """A GGUF holding only `token_embd.weight` (and `output.weight`), for reading the matrices back."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_embedding_length(inputs.shape[1])
    add_matrix(writer, "token_embd.weight", inputs, qtype)
    if outputs is not None:
        add_matrix(writer, "output.weight", outputs, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_gguf(path: Path, seed: int = 0, qtype=None) -> TinyModel:
    """The same kind of model as a GGUF file (float32 tensors, gpt2-style tokenizer metadata); the
    token embedding quantised to `qtype` when given (`embeddings` stays the float reference)."""
    import json

    import gguf

    tok = train_tokenizer()
    model = _llama(tok.get_vocab_size(), tied=True, seed=seed, untrained=untrained_ids(tok))
    cfg = model.config
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    specials = {a["id"] for a in spec["added_tokens"]}

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-glitch-llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL
                            for i in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for i in range(cfg.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    for hf, gg in names.items():
        add_matrix(writer, gg, state[hf], qtype if gg == "token_embd.weight" else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return TinyModel(path, len(tokens), state["model.embed_tokens.weight"], None, PLANTED)


def write_sharded_folder(folder: Path, dtype: torch.dtype = torch.bfloat16, seed: int = 2) -> TinyModel:
    """An untied model in three safetensors shards with an index: the input embedding alone in one,
    the output matrix in another, every other tensor in a third (which tests may corrupt).
    `embeddings`/`unembedding` hold the stored values, exactly, in float32."""
    from safetensors.torch import save_file

    tiny = write_hf_folder(folder, tied=False, seed=seed)
    (folder / "model.safetensors").unlink()
    model = _llama(tiny.vocab_size, False, seed, untrained_ids(train_tokenizer()))
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    shards = {"model.embed_tokens.weight": "model-00001-of-00003.safetensors",
              "lm_head.weight": "model-00002-of-00003.safetensors"}
    weight_map = {name: shards.get(name, "model-00003-of-00003.safetensors") for name in state}
    for shard in sorted(set(weight_map.values())):
        save_file({k: v for k, v in state.items() if weight_map[k] == shard}, str(folder / shard),
                  metadata={"format": "pt"})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return TinyModel(folder, tiny.vocab_size, state["model.embed_tokens.weight"].float().numpy(),
                     state["lm_head.weight"].float().numpy(), PLANTED)
