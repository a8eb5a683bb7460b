"""What a greedy continuation shows about the token under test, shared by every engine: the token's
largest probability over its positions, and whether the answer wrote the token's text in any tokens.
Positions after the model ends its text (an end token) do not count: what a model would write after
its own end-of-text is no answer (SmolLM2 writes `<|im_start|>` there, which made that special token
look reproduced), and a server stops there anyway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

MIN_ANSWER_CHARS = 3  # shorter texts turn up in any answer by chance


def span_prob(decode: Callable[[int, int], str], probs: np.ndarray, text: str) -> float:
    """Probability of the shortest span of a greedy answer whose text (`decode(start, end)`) contains
    `text`, however the model split it into tokens (each with its probability in `probs`); 0 when it
    never does."""
    target = text.strip()
    if len(target) < MIN_ANSWER_CHARS or "\ufffd" in target:
        return 0.0
    for end in range(1, len(probs) + 1):
        if target in decode(0, end):
            start = max(s for s in range(end) if target in decode(s, end))
            return float(np.prod(probs[start:end]))
    return 0.0


def answer_prob(tokenizer: Any, ids: list[int], probs: np.ndarray, text: str) -> float:
    """`span_prob` of a greedy answer given as token ids, decoded by the model's tokenizer."""
    return span_prob(lambda s, e: tokenizer.decode(ids[s:e], skip_special_tokens=True), probs[:len(ids)], text)


def greedy_scores(tokenizer: Any, target_p: np.ndarray, greedy: np.ndarray, greedy_p: np.ndarray, ends: set[int],
                  answers: list[str] | None) -> np.ndarray:
    """Per row: the largest probability of its target (`target_p`, rows x positions) over the positions
    up to and including the one where the greedy continuation (`greedy`, with probabilities `greedy_p`)
    writes an end token; with `answers` (each target's text), also `answer_prob` of the answer before it."""
    ended = np.isin(greedy, list(ends))
    lengths = np.where(ended.any(axis=1), ended.argmax(axis=1), greedy.shape[1])  # answer tokens before the end
    counted = np.arange(greedy.shape[1])[None, :] <= lengths[:, None]
    best = np.where(counted, target_p, 0.0).max(axis=1).astype(np.float32)
    if answers is not None:
        said = [answer_prob(tokenizer, greedy[k, :lengths[k]].tolist(), greedy_p[k], answers[k])
                for k in range(len(greedy))]
        best = np.maximum(best, np.asarray(said, dtype=np.float32))
    return best
