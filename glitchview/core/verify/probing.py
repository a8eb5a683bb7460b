"""Verification by the model's own behaviour: Land & Bartolo's repetition test, batched.

Every candidate token is written by id into repetition prompts; the model reads each prompt in
one batched forward pass (logits only at the last position), then takes a few greedy steps on its
key/value cache; the largest probability it gives the token over those positions is the score.
Below 0.01 the token is a verified glitch token (below 0.001: strong); above 0.1 it is rejected.
A batch that raises is retried token by token, and a token whose forward pass raises gets the
verdict `crash` with the message; the run goes on.

Modes: `full` uses the shipped repetition prompts; `fast` screens with one short prompt and can only
say `normal` or `suspect`: the suspects then get the full test (unless explicitly skipped), so every
`glitch` verdict comes from the full test. On CPUs with bfloat16 matrix units (AMX, AVX512-BF16) the model
runs in bfloat16, else float32."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GlitchViewError
from ..model.gguf_direct import ensure_network_weights
from ..model.loading import LoadedModel
from ..progress import CancelToken, ProgressFn, no_progress, sub_progress
from .templates import default_templates, encode_template, fill, repetition_text
from .verdicts import GLITCH_BELOW, REJECT_ABOVE, STRONG_BELOW, Verdict


@dataclass(frozen=True)
class ProbeMode:
    name: str
    pairs: int  # example pairs in the repetition-device prompt
    templates: tuple[str, ...]  # names of the repetition templates used
    steps: int  # positions read (the first, then greedy continuations)
    batch_size: int


MODES = {
    "full": ProbeMode("full", 3, ("repeat-device", "what-means-answer", "copy-quoted-examples"), 3, 32),
    "fast": ProbeMode("fast", 3, ("repeat-device",), 2, 64),
}


class NotGenerativeError(GlitchViewError):
    """The model is an encoder (or has no language-model head) and cannot be prompted."""


@dataclass
class ProbeModel:
    """A causal language model ready for batched probing, with its tokenizer."""

    model: Any
    tokenizer: Any
    vocab_rows: int
    dtype_name: str
    prefix_cache: dict[tuple[int, ...], Any] = field(default_factory=dict)

    def step(self, input_ids: Any, cache: Any = None) -> tuple[Any, Any]:
        """One forward pass: (float32 logits at the last position, the key/value cache)."""
        kwargs = {_cache_keyword(self.model): cache} if cache is not None else {}
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **kwargs)
        new_cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return out.logits[:, -1, :].float(), new_cache


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
_BUILT: dict[tuple[str, str], ProbeModel] = {}


def load_probe_model(loaded: LoadedModel, precision: str = "auto", progress: ProgressFn = no_progress,
                     cancel: CancelToken | None = None) -> ProbeModel:
    """Build the network of a loaded model for probing (never running code from its folder).

    One build at a time in the process: transformers switches process-wide torch state (default
    dtype, meta-device initialisation) while it builds, and two builds on two worker threads left
    each other's networks on the meta device. A built network is reused for the same model."""
    with _BUILD_LOCK:
        key = (loaded.fingerprint, precision)
        if key not in _BUILT:
            _BUILT.clear()  # keep one network in memory
            _BUILT[key] = _build_probe_model(loaded, precision, progress, cancel)
        return _BUILT[key]


def _build_probe_model(loaded: LoadedModel, precision: str, progress: ProgressFn,
                       cancel: CancelToken | None) -> ProbeModel:
    if not loaded.generative:
        raise NotGenerativeError(
            f"{loaded.source.display_name} is an encoder ({loaded.architecture}) without a language-model "
            f"head: it cannot generate, so its tokens cannot be verified by prompting")
    import torch
    from transformers import AutoModelForCausalLM

    use_bf16 = precision == "bfloat16" or (precision == "auto" and bf16_is_fast())
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    # a GGUF opened for analysis has only its tokenizer cached: the whole network is converted now, once
    folder = ensure_network_weights(loaded.source, loaded.fingerprint, loaded.folder, progress, cancel)
    default_dtype = torch.get_default_dtype()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=False,
                                                     local_files_only=True, dtype=dtype)
    except Exception as exc:
        raise GlitchViewError(f"cannot build {loaded.source.display_name} for generation: {exc}") from exc
    finally:  # a failed load must not leave torch's default dtype changed for everything after it
        torch.set_default_dtype(default_dtype)
    model.eval()
    return ProbeModel(model, loaded.tokenizer, loaded.input_embeddings.shape[0], str(dtype).removeprefix("torch."))


@dataclass
class Verification:
    """Results of one verification run, one row per token tested."""

    ids: np.ndarray
    max_prob: np.ndarray  # NaN for crashes
    prompt_probs: np.ndarray  # (n, templates) largest probability per prompt
    verdicts: np.ndarray  # int8 Verdict codes
    reasons: list[str]
    mode: str
    templates: tuple[str, ...]
    seconds: float
    dtype: str = ""
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else 0.0


def verdict_of(max_prob: float) -> Verdict:
    if np.isnan(max_prob):
        return Verdict.CRASH
    if max_prob < STRONG_BELOW:
        return Verdict.STRONG_GLITCH
    if max_prob < GLITCH_BELOW:
        return Verdict.GLITCH
    if max_prob <= REJECT_ABOVE:
        return Verdict.UNCERTAIN
    return Verdict.NORMAL


def _reason(probs: np.ndarray, names: tuple[str, ...], verdict: Verdict, error: str | None) -> str:
    if error is not None:
        return f"crash: {error}"
    if verdict == Verdict.CRASH:
        return "crash: the model gave no valid probability (NaN) for this token"
    best = float(np.max(probs))
    detail = ", ".join(f"{n} {p:.2g}" for n, p in zip(names, probs))
    limits = {Verdict.STRONG_GLITCH: f"< {STRONG_BELOW}", Verdict.GLITCH: f"< {GLITCH_BELOW}",
              Verdict.UNCERTAIN: f"between {GLITCH_BELOW} and {REJECT_ABOVE}", Verdict.NORMAL: f"> {REJECT_ABOVE}",
              Verdict.SUSPECT: f"<= {REJECT_ABOVE} on screening: a suspect for the full test"}
    return f"max P(token) {best:.3g} {limits[verdict]} ({detail})"


def _shared_prefix(pm: ProbeModel, prefix: np.ndarray, batch: int) -> Any:
    """The key/value cache of the prompt's token-free prefix, computed once and repeated for the batch."""
    import copy

    import torch

    key = tuple(prefix.tolist())
    if key not in pm.prefix_cache:
        pm.prefix_cache[key] = pm.step(torch.from_numpy(prefix)[None, :])[1]
    cache = copy.deepcopy(pm.prefix_cache[key])
    cache.batch_repeat_interleave(batch)
    return cache


MIN_ANSWER_CHARS = 3  # shorter texts turn up in any answer by chance


def answer_prob(tokenizer: Any, ids: list[int], probs: np.ndarray, text: str) -> float:
    """Probability of the shortest span of a greedy answer (`ids`, each with its probability) whose
    text contains the token's `text`, however the model split it into tokens; 0 when it never does."""
    target = text.strip()
    if len(target) < MIN_ANSWER_CHARS or "\ufffd" in target:
        return 0.0
    for end in range(1, len(ids) + 1):
        if target in tokenizer.decode(ids[:end], skip_special_tokens=True):
            start = max(s for s in range(end) if target in tokenizer.decode(ids[s:end], skip_special_tokens=True))
            return float(np.prod(probs[start:end]))
    return 0.0


def _probe_batch(pm: ProbeModel, rows: np.ndarray, targets: np.ndarray, steps: int,
                 answers: list[str] | None = None) -> np.ndarray:
    """Largest probability of each row's target over the next `steps` positions (greedy). With
    `answers` (each target's text), also the probability of a greedy answer that writes that text in
    any tokens (`answer_prob`). The part of the prompt before the first slot is the same for every
    row: it is read once."""
    import torch

    first_slot = int(np.argmax(rows[0] != rows[-1])) if len(rows) > 1 else 0
    first_slot = min(first_slot, rows.shape[1] - 1)
    with torch.inference_mode():
        target = torch.from_numpy(targets).long()[:, None]
        cache = _shared_prefix(pm, rows[0, :first_slot], len(rows)) if first_slot > 0 else None
        logits, cache = pm.step(torch.from_numpy(np.ascontiguousarray(rows[:, first_slot:])), cache)
        best = torch.zeros(len(rows), dtype=torch.float32)
        greedy, greedy_p = [], []
        for step in range(steps):
            probs = torch.softmax(logits, dim=-1)
            best = torch.maximum(best, probs.gather(1, target)[:, 0])
            choice = probs.argmax(dim=-1, keepdim=True)
            greedy.append(choice[:, 0])
            greedy_p.append(probs.gather(1, choice)[:, 0])
            if step == steps - 1:
                break
            logits, cache = pm.step(choice, cache)
    out = best.numpy()
    if answers is not None:
        ids, p = torch.stack(greedy, 1).numpy(), torch.stack(greedy_p, 1).numpy()
        said = [answer_prob(pm.tokenizer, ids[k].tolist(), p[k], answers[k]) for k in range(len(rows))]
        out = np.maximum(out, np.asarray(said, dtype=np.float32))
    return out


def _probe_template(pm: ProbeModel, template_ids: np.ndarray, ids: np.ndarray, steps: int,
                    errors: dict[int, str], answers: list[str] | None = None) -> np.ndarray:
    """Probabilities for `ids` on one template; a failing batch is retried token by token."""
    try:
        return _probe_batch(pm, fill(template_ids, ids), ids, steps, answers)
    except Exception:  # find the token(s) that break the forward pass
        out = np.full(len(ids), np.nan, dtype=np.float32)
        for k, token in enumerate(ids):
            try:
                out[k] = _probe_batch(pm, fill(template_ids, ids[k:k + 1]), ids[k:k + 1], steps,
                                      answers[k:k + 1] if answers is not None else None)[0]
            except Exception as exc:  # recorded as the token's finding
                errors[int(token)] = f"{type(exc).__name__}: {exc}"
        return out


def _probe_all(pm: ProbeModel, ids: np.ndarray, spec: ProbeMode, progress: ProgressFn,
               cancel: CancelToken) -> tuple[np.ndarray, dict[int, str]]:
    """Probabilities (tokens x templates of `spec`) and the errors of the tokens that crash."""
    specs = {t["name"]: t for t in default_templates()["repetition"]}
    templates = [specs[name] for name in spec.templates]
    encoded = [encode_template(pm.tokenizer, repetition_text(t, spec.pairs)) for t in templates]
    texts = [pm.tokenizer.decode([int(i)], skip_special_tokens=True) if 0 <= i < pm.vocab_rows else "" for i in ids]
    probs = np.full((len(ids), len(encoded)), np.nan, dtype=np.float32)
    errors: dict[int, str] = {}
    out_of_range = (ids < 0) | (ids >= pm.vocab_rows)
    for token in ids[out_of_range]:
        errors[int(token)] = f"id {token} has no embedding row (the matrix has {pm.vocab_rows})"
    runnable = np.flatnonzero(~out_of_range)
    start = time.perf_counter()
    total = max(len(runnable) * len(encoded), 1)
    done = 0
    for t, template_ids in enumerate(encoded):
        for b in range(0, len(runnable), spec.batch_size):
            cancel.check()
            chunk = runnable[b:b + spec.batch_size]
            answers = [texts[k] for k in chunk] if templates[t].get("answer") else None
            probs[chunk, t] = _probe_template(pm, template_ids, ids[chunk], templates[t].get("steps", spec.steps),
                                              errors, answers)
            done += len(chunk)
            rate = done / len(encoded) / max(time.perf_counter() - start, 1e-9)
            progress(done / total, f"Verify ({spec.name}): {spec.templates[t]} prompt, {done // len(encoded)}"
                                   f"/{len(ids)} tokens, {rate:.1f} tokens/s")
    return probs, errors


def _max_prob(ids: np.ndarray, probs: np.ndarray, errors: dict[int, str]) -> np.ndarray:
    """Largest probability over the prompts; NaN for a token that crashed."""
    best = np.where(np.isnan(probs).any(axis=1), np.nan, np.nanmax(np.nan_to_num(probs, nan=0.0), axis=1))
    best[[k for k, token in enumerate(ids.tolist()) if token in errors]] = np.nan
    return best.astype(np.float32)


def screen_verdict(max_prob: float) -> Verdict:
    """What a screening may say: the model reproduced the token (normal), it crashed, or it is a
    suspect that only the full test can call a glitch."""
    if np.isnan(max_prob):
        return Verdict.CRASH
    return Verdict.NORMAL if max_prob > REJECT_ABOVE else Verdict.SUSPECT


def verify_tokens(pm: ProbeModel, token_ids, mode: str = "full", progress: ProgressFn = no_progress,
                  cancel: CancelToken | None = None, confirm: bool = True) -> Verification:
    """Run the test of `mode` on every token id (see the module docstring).

    `fast` only screens: it gives `normal` or `suspect` (or `crash`); with `confirm` (the default) the
    full test then runs on the suspects and gives their verdict, so a `glitch` verdict always comes
    from the full test. `confirm=False` leaves the suspects unconfirmed."""
    cancel = cancel or CancelToken()
    spec = MODES[mode]
    ids = np.asarray(token_ids, dtype=np.int64)
    start = time.perf_counter()
    screening = mode != "full"
    share = 0.3 if screening and confirm else 1.0
    probs, errors = _probe_all(pm, ids, spec, sub_progress(progress, 0.0, share), cancel)
    max_prob = _max_prob(ids, probs, errors)
    judge = screen_verdict if screening else verdict_of
    verdicts = np.array([judge(p) for p in max_prob], dtype=np.int8)
    reasons = [_reason(probs[k], spec.templates, Verdict(verdicts[k]), errors.get(int(ids[k]))) for k in range(len(ids))]
    label = mode
    if screening:
        suspects = np.flatnonzero(verdicts == Verdict.SUSPECT)
        label = f"{mode}, {len(suspects)} suspects " + ("confirmed by the full test" if confirm else "NOT confirmed")
        if confirm and len(suspects):
            full = verify_tokens(pm, ids[suspects], "full", sub_progress(progress, share, 1.0), cancel)
            verdicts[suspects], max_prob[suspects] = full.verdicts, full.max_prob
            errors.update(full.errors)
            for k, reason in zip(suspects.tolist(), full.reasons):
                reasons[k] = f"confirmed by the full test: {reason} (screening: {reasons[k]})"
    return Verification(ids, max_prob, probs, verdicts, reasons, label, spec.templates,
                        time.perf_counter() - start, pm.dtype_name, errors)
