"""Verification by the model's own behaviour: Land & Bartolo's repetition test, batched.

Every candidate token is written by id into repetition prompts; the model reads each prompt in
one batched forward pass (logits only at the last position), then takes a few greedy steps on its
key/value cache; the largest probability it gives the token over those positions is the score.
Below 0.01 the token is a verified glitch token (below 0.001: strong); above 0.1 it is rejected.
A batch that raises is retried token by token, and a token whose forward pass raises gets the
verdict `crash` with the message; the run goes on.

Modes: `full` uses the shipped repetition prompts; `fast` screens with one short prompt and can only
say `normal` or `suspect`: the suspects then get the full test (unless explicitly skipped), so every
`glitch` verdict comes from the full test. The prompts run on any `engines.Engine` (torch, llama.cpp or
an inference server); torch runs in bfloat16 on CPUs with bfloat16 matrix units (AMX, AVX512-BF16) and on
GPUs, else float32."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import Cancelled
from ..progress import CancelToken, ProgressFn, no_progress, sub_progress
from .engines import Engine
from .engines.torch_engine import NotGenerativeError, ProbeModel, bf16_is_fast, load_probe_model
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
    engine: str = ""  # the engine's description: which engine, number format, where

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


def _probe_template(pm: Engine, template_ids: np.ndarray, ids: np.ndarray, steps: int,
                    errors: dict[int, str], answers: list[str] | None, cancel: CancelToken) -> np.ndarray:
    """Probabilities for `ids` on one template; a failing batch is retried token by token."""
    try:
        return pm.probe(fill(template_ids, ids), ids, steps, answers, cancel)
    except Cancelled:
        raise
    except Exception:  # find the token(s) that break the forward pass
        out = np.full(len(ids), np.nan, dtype=np.float32)
        for k, token in enumerate(ids):
            try:
                out[k] = pm.probe(fill(template_ids, ids[k:k + 1]), ids[k:k + 1], steps,
                                  answers[k:k + 1] if answers is not None else None, cancel)[0]
            except Cancelled:
                raise
            except Exception as exc:  # recorded as the token's finding
                errors[int(token)] = f"{type(exc).__name__}: {exc}"
        return out


def _probe_all(pm: Engine, ids: np.ndarray, spec: ProbeMode, progress: ProgressFn,
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
                                              errors, answers, cancel)
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


def verify_tokens(pm: Engine, token_ids, mode: str = "full", progress: ProgressFn = no_progress,
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
                        time.perf_counter() - start, pm.dtype_name, errors, pm.description)


# the torch engine, where callers have always found it
__all__ = ["NotGenerativeError", "ProbeModel", "bf16_is_fast", "load_probe_model", "verify_tokens"]
