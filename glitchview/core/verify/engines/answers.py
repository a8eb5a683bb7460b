"""Whether a greedy answer wrote the token's text, in whatever tokens: shared by every engine."""

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
