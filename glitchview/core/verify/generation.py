"""Generation with a token under test, and automatic scoring of what comes out.

`generate` streams one continuation token by token (greedy or temperature/top-p sampling,
seeded), bounded by a token limit, a wall-clock limit and cancellation, recording each output
token's probability and the distribution's entropy. `output_metrics` scores a continuation the way
the seed article eyeballs it: does it reproduce the token, does it loop, is it garbled, did it
collapse; `behaviour_verdict` turns those into a verdict with its reasons."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..model.vocab import CATEGORIES, TokenTable
from ..progress import CancelToken
from .engines import Engine
from .engines.sampling import GenerationSettings

# When a continuation reads as anomalous. These are screening heuristics for the prompt editor, not
# measured decision boundaries (the repetition test decides verdicts):
# - LOOP_RATIO: half of the 3-grams repeated means the text is mostly one loop; ordinary prose of
#   8+ tokens repeats far fewer (LOOP_MIN_TOKENS: shorter outputs have too few 3-grams to tell);
# - GARBLE_SHARE: one character in ten replacement or unprintable is beyond any ordinary text;
# - MIN_TOKENS: stopping after fewer than two tokens is a collapse, not an answer.
LOOP_RATIO, LOOP_MIN_TOKENS, GARBLE_SHARE, MIN_TOKENS = 0.5, 8, 0.1, 2


@dataclass
class Generated:
    ids: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)  # probability of each chosen token
    entropies: list[float] = field(default_factory=list)  # entropy (nats) of each step's distribution
    stopped: str = ""  # eos, max_tokens, time_limit or cancelled

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def generate(pm: Engine, prompt_ids: np.ndarray, settings: GenerationSettings = GenerationSettings(),
             on_token: Callable[[int, str, float], None] | None = None, cancel: CancelToken | None = None,
             eos_ids: set[int] | None = None) -> Generated:
    """Continue `prompt_ids` (no slots left) on any engine, streaming each new token to `on_token(id, text, p)`."""
    cancel = cancel or CancelToken()
    eos = eos_ids if eos_ids is not None else pm.eos_ids()
    out = Generated()
    start = time.monotonic()
    tokens = pm.stream(np.asarray(prompt_ids, dtype=np.int64), settings, cancel)
    try:
        for token, p, entropy in tokens:
            if token in eos:
                out.stopped = "eos"
                break
            piece = pm.tokenizer.decode([token], skip_special_tokens=False)
            out.ids.append(token)
            out.pieces.append(piece)
            out.probs.append(p)
            out.entropies.append(entropy)
            if on_token is not None:
                on_token(token, piece, p)
            if len(out.ids) >= settings.max_new_tokens:
                out.stopped = "max_tokens"
                break
            if time.monotonic() - start > settings.time_limit_s:
                out.stopped = "time_limit"
                break
    finally:
        tokens.close()  # a server engine closes its stream
    if not out.stopped:
        out.stopped = "cancelled"
    return out


def repetition_ratio(ids: list[int], n: int = 3) -> float:
    """Share of repeated n-grams in a sequence (0 = none, near 1 = one loop)."""
    grams = [tuple(ids[k:k + n]) for k in range(len(ids) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def garbled_share(text: str) -> float:
    """Share of characters that are replacement characters or unprintable (other than newline/tab)."""
    if not text:
        return 0.0
    bad = sum(1 for c in text if c == "\ufffd" or (not c.isprintable() and c not in "\n\t"))
    return bad / len(text)


def output_metrics(out: Generated, token_id: int, token_text: str) -> dict[str, float | bool]:
    core = token_text.strip()
    return {
        "reproduces": token_id in out.ids or bool(core and core in out.text),
        "repetition_ratio": repetition_ratio(out.ids),
        "garbled_share": garbled_share(out.text),
        "collapsed": len(out.ids) < MIN_TOKENS or not out.text.strip(),
        "mean_entropy": float(np.mean(out.entropies)) if out.entropies else 0.0,
        "tokens": len(out.ids),
    }


def behaviour_verdict(metrics: dict[str, float | bool]) -> tuple[bool, list[str]]:
    """(anomalous, reasons) for one continuation."""
    reasons = []
    if metrics["repetition_ratio"] > LOOP_RATIO and metrics["tokens"] >= LOOP_MIN_TOKENS:
        reasons.append(f"loops ({metrics['repetition_ratio']:.0%} repeated 3-grams)")
    if metrics["garbled_share"] > GARBLE_SHARE:
        reasons.append(f"garbled ({metrics['garbled_share']:.0%} broken or unprintable characters)")
    if metrics["collapsed"]:
        reasons.append(f"collapsed ({int(metrics['tokens'])} tokens before stopping)")
    return bool(reasons), reasons or ["reads normally"]


def pick_control_token(table: TokenTable, unembedding_cosine: np.ndarray, token_id: int) -> int:
    """An ordinary token to run beside `token_id`: a plain word (no special, byte, control or
    unreachable flag) from the middle of the unembedding indicator, with the closest byte length."""
    plain = np.asarray(table.category) == CATEGORIES.index("latin_word")
    for flag in ("special", "byte", "partial_utf8", "control", "unreachable", "no_token"):
        plain &= ~table.flags[flag]
    finite = np.isfinite(unembedding_cosine)
    if finite.any():
        lo, hi = np.percentile(unembedding_cosine[finite], [40, 60])
        plain &= (unembedding_cosine >= lo) & (unembedding_cosine <= hi)
    plain[token_id] = False
    candidates = np.flatnonzero(plain)
    if candidates.size == 0:
        return 0 if token_id != 0 else 1
    lengths = np.fromiter((len(table.token_bytes[i]) for i in candidates), dtype=np.int64, count=len(candidates))
    return int(candidates[np.argmin(np.abs(lengths - len(table.token_bytes[token_id])))])
