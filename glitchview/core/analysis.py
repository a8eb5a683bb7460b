"""The analysis of one model: everything the views and exports show, in one object.

It holds the token table, every indicator score, the clustering, the projections and the
user's flags, plus what is needed to tie it to its model (fingerprint) and reproduce it
(settings). It never holds the embedding matrix itself: that stays with the loaded model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .indicators import INDICATORS, Direction, rank_order
from .reference import ReferenceSet
from .vocab import TokenTable

DEFAULT_INDICATOR = "cluster_distance"


@dataclass
class ModelInfo:
    """What the analysis records of its model."""

    name: str  # the string that names it (demo name, folder or file)
    title: str
    fingerprint: str
    architecture: str
    n_tokens: int
    dim: int
    tied: bool
    generative: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class Analysis:
    model: ModelInfo
    settings: dict[str, Any]
    table: TokenTable
    scores: dict[str, np.ndarray]
    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    reference: ReferenceSet
    projections: dict[str, np.ndarray]
    flagged: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    selection: np.ndarray | None = None  # the user's map/table selection, kept across save/open
    view: dict[str, Any] = field(default_factory=dict)  # how the window showed it: colour_by, projection

    def __len__(self) -> int:
        return len(self.table)

    def suspicious_end(self, indicator: str) -> Direction:
        return INDICATORS[indicator].suspicious if indicator in INDICATORS else "high"

    def top(self, indicator: str, n: int, end: Direction | None = None) -> np.ndarray:
        """The ids of the `n` tokens at the given end (default: the suspicious end) of an indicator."""
        return rank_order(self.scores[indicator], end or self.suspicious_end(indicator))[:n]
