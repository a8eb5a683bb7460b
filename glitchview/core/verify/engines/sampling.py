"""Choosing the next token from a full distribution (greedy, or temperature and top-p sampling with a
seeded generator): shared by the engines that see every logit (torch, llama.cpp)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 40
    greedy: bool = True
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    time_limit_s: float = 30.0


def choose(probs: Any, settings: GenerationSettings, gen: Any) -> int:
    """The next token from `probs` (a 1-D torch tensor)."""
    import torch

    if settings.greedy:
        return int(probs.argmax())
    probs = torch.softmax(torch.log(probs.clamp_min(1e-12)) / max(settings.temperature, 1e-3), dim=-1)
    ordered, order = probs.sort(descending=True)
    keep = ordered.cumsum(0) - ordered < settings.top_p
    ordered = ordered * keep
    return int(order[torch.multinomial(ordered / ordered.sum(), 1, generator=gen)])


def entropy(probs: Any) -> float:
    """Entropy (nats) of a distribution given as a 1-D torch tensor."""
    import torch

    return float(-(probs * torch.log(probs.clamp_min(1e-12))).sum())
