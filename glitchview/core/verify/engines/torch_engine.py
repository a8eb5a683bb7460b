"""The torch engine: the model's network built by transformers from its weights (a GGUF is converted
once), on the CPU or the best local accelerator (see `devices`). Prompts of a batch are read in one
forward pass, the token-free prefix they share once (its key/value cache is copied per batch)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import GlitchViewError
from ...model.gguf_direct import ensure_network_weights
from ...model.loading import LoadedModel
from ...progress import CancelToken, ProgressFn, no_progress
from .answers import greedy_scores
from .devices import DEFAULT_DEVICE, DeviceError, Placement, place, this_machine
from .sampling import GenerationSettings, choose, entropy


class NotGenerativeError(GlitchViewError):
    """The model is an encoder (or has no language-model head) and cannot be prompted."""


@dataclass
class ProbeModel:
    """The torch engine: a causal language model ready for batched probing, with its tokenizer."""

    model: Any
    tokenizer: Any
    vocab_rows: int
    dtype_name: str
    prefix_cache: dict[tuple[int, ...], Any] = field(default_factory=dict)
    device: str = "cpu"
    name: str = "torch"

    @property
    def description(self) -> str:
        return f"torch, {self.dtype_name} on {self.device}"

    def step(self, input_ids: Any, cache: Any = None) -> tuple[Any, Any]:
        """One forward pass: (float32 logits at the last position, the key/value cache)."""
        kwargs = {_cache_keyword(self.model): cache} if cache is not None else {}
        out = self.model(input_ids=input_ids.to(self.device), use_cache=True, logits_to_keep=1, **kwargs)
        new_cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return out.logits[:, -1, :].float(), new_cache

    def _shared_prefix(self, prefix: np.ndarray, batch: int) -> Any:
        """The key/value cache of the prompt's token-free prefix, computed once and repeated for the batch."""
        import torch

        key = tuple(prefix.tolist())
        if key not in self.prefix_cache:
            self.prefix_cache[key] = self.step(torch.from_numpy(prefix)[None, :])[1]
        cache = copy.deepcopy(self.prefix_cache[key])
        cache.batch_repeat_interleave(batch)
        return cache

    def probe(self, rows: np.ndarray, targets: np.ndarray, steps: int, answers: list[str] | None = None,
              cancel: CancelToken | None = None) -> np.ndarray:
        """Largest probability of each row's target over the next `steps` positions (greedy, until the
        model ends its text). With `answers` (each target's text), also the probability of a greedy answer
        that writes that text in any tokens (`answers.greedy_scores`). The part of the prompt before the
        first slot is the same for every row: it is read once."""
        import torch

        first_slot = int(np.argmax(rows[0] != rows[-1])) if len(rows) > 1 else 0
        first_slot = min(first_slot, rows.shape[1] - 1)
        with torch.inference_mode():
            target = torch.from_numpy(targets).long()[:, None].to(self.device)
            cache = self._shared_prefix(rows[0, :first_slot], len(rows)) if first_slot > 0 else None
            logits, cache = self.step(torch.from_numpy(np.ascontiguousarray(rows[:, first_slot:])), cache)
            target_p, greedy, greedy_p = [], [], []
            for step in range(steps):
                probs = torch.softmax(logits, dim=-1)
                target_p.append(probs.gather(1, target)[:, 0])
                choice = probs.argmax(dim=-1, keepdim=True)
                greedy.append(choice[:, 0])
                greedy_p.append(probs.gather(1, choice)[:, 0])
                if step == steps - 1:
                    break
                logits, cache = self.step(choice, cache)
        return greedy_scores(self.tokenizer, *(torch.stack(v, 1).cpu().numpy() for v in (target_p, greedy, greedy_p)),
                             self.eos_ids(), answers)

    def stream(self, prompt_ids: np.ndarray, settings: GenerationSettings,
               cancel: CancelToken) -> Iterator[tuple[int, float, float]]:
        """(token, its probability, the distribution's entropy) for each new token, until the caller stops."""
        import torch

        gen = torch.Generator().manual_seed(settings.seed)
        with torch.inference_mode():
            logits, cache = self.step(torch.from_numpy(np.asarray(prompt_ids, dtype=np.int64))[None, :])
            while not cancel.cancelled:
                probs = torch.softmax(logits[0].cpu(), dim=-1)
                token = choose(probs, settings, gen)
                yield token, float(probs[token]), entropy(probs)
                logits, cache = self.step(torch.tensor([[token]]), cache)

    def eos_ids(self) -> set[int]:
        config = self.model.config
        generation = getattr(self.model, "generation_config", None)
        ids: set[int] = set()
        for value in (getattr(config, "eos_token_id", None), getattr(generation, "eos_token_id", None)):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids


def _cache_keyword(model: Any) -> str:
    """transformers 5 names the key/value cache `cache`; earlier releases `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def bf16_is_fast() -> bool:
    import torch

    cpu = torch.cpu
    return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())


_BUILD_LOCK = threading.Lock()
_BUILT: dict[tuple[str, str, str], ProbeModel] = {}


def load_probe_model(loaded: LoadedModel, precision: str = "auto", progress: ProgressFn = no_progress,
                     cancel: CancelToken | None = None, device: str = DEFAULT_DEVICE) -> ProbeModel:
    """Build the network of a loaded model for probing (never running code from its folder) on `device`
    (cpu, cuda, mps or auto: see `devices.place`).

    One build at a time in the process: transformers switches process-wide torch state (default
    dtype, meta-device initialisation) while it builds, and two builds on two worker threads left
    each other's networks on the meta device. A built network is reused for the same model."""
    with _BUILD_LOCK:
        key = (loaded.fingerprint, precision, device)
        if key not in _BUILT:
            _BUILT.clear()  # keep one network in memory
            _BUILT[key] = _build_probe_model(loaded, precision, device, progress, cancel)
        return _BUILT[key]


def parameter_count(folder: Any) -> int:
    """Weights of the network described by the folder's config, counted on the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    with torch.device("meta"):
        network = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    return sum(p.numel() for p in network.parameters())


def placement(loaded: LoadedModel, folder: Any, precision: str, device: str) -> Placement:
    """Where the network goes, refused with a one-line error before it is built when it cannot fit."""
    return place(device, precision, parameter_count(folder), this_machine(), loaded.source.display_name)


def _build_probe_model(loaded: LoadedModel, precision: str, device: str, progress: ProgressFn,
                       cancel: CancelToken | None) -> ProbeModel:
    if not loaded.generative:
        raise NotGenerativeError(
            f"{loaded.source.display_name} is an encoder ({loaded.architecture}) without a language-model "
            f"head: it cannot generate, so its tokens cannot be verified by prompting")
    import torch
    from transformers import AutoModelForCausalLM

    # a GGUF opened for analysis has only its tokenizer cached: the whole network is converted now, once
    folder = ensure_network_weights(loaded.source, loaded.fingerprint, loaded.folder, progress, cancel)
    default_dtype = torch.get_default_dtype()
    try:
        where = placement(loaded, folder, precision, device)
        model = AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=False,
                                                     local_files_only=True, dtype=getattr(torch, where.dtype))
    except DeviceError:
        raise
    except Exception as exc:
        raise GlitchViewError(f"cannot build {loaded.source.display_name} for generation: {exc}") from exc
    finally:  # a failed load must not leave torch's default dtype changed for everything after it
        torch.set_default_dtype(default_dtype)
    model.to(where.device).eval()
    return ProbeModel(model, loaded.tokenizer, loaded.input_embeddings.shape[0], where.dtype, device=where.device)
