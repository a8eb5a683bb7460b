"""The analysis of one model: everything the views and exports show, in one object.

It holds the token table, every indicator score, the clustering, the projections and the
user's flags, plus what is needed to tie it to its model (fingerprint) and reproduce it
(settings). It never holds the embedding matrix itself: that stays with the loaded model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .model.vocab import KNOWN_UNUSED, TokenTable
from .scores.compare import Comparison
from .scores.corpus import CorpusCounts
from .scores.indicators import INDICATORS, Direction, Ranking, ranking
from .scores.reference import ReferenceSet
from .verify import verdicts as verdict_codes
from .verify.verdicts import Verdict

DEFAULT_INDICATOR = "glitch_score"  # the recommended score: what the window, table, map and export follow
CORPUS_RARITY = "corpus_rarity"  # a score derived from the corpus counts (suspicious: high), never saved as one


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
class Verdicts:
    """Verification results per token (`Verdict` codes), and the prompt-run history."""

    verdict: np.ndarray  # int8 Verdict codes
    max_prob: np.ndarray  # float32, NaN where not verified or crashed
    reasons: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def empty(cls, n: int) -> "Verdicts":
        return cls(verdict_codes.empty(n), np.full(n, np.nan, dtype=np.float32), [""] * n)

    def copy(self) -> "Verdicts":
        return Verdicts(self.verdict.copy(), self.max_prob.copy(), list(self.reasons), list(self.history))

    def is_verified(self, token_id: int) -> bool:
        return self.verdict[token_id] != Verdict.UNVERIFIED

    def history_for(self, token_id: int) -> list[dict[str, Any]]:
        """The prompt runs made with this token (first run of each record)."""
        return [r for r in self.history if r.get("runs") and r["runs"][0].get("token") == token_id]

    def record(self, ids: np.ndarray, verdicts: np.ndarray, max_prob: np.ndarray, reasons: list[str]) -> None:
        """Store results by token id. Ids past the matrix (a tokenizer larger than the embedding) have
        no row to store them in: their `crash` findings stay in the verification result only."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and ids.min() < 0:
            raise ValueError(f"token ids cannot be negative (got {int(ids.min())})")
        rows = ids < len(self.verdict)
        ids = ids[rows]
        self.verdict[ids] = np.asarray(verdicts)[rows]
        self.max_prob[ids] = np.asarray(max_prob)[rows]
        for i, reason in zip(ids.tolist(), (r for r, keep in zip(reasons, rows.tolist()) if keep)):
            self.reasons[i] = reason


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
    verdicts: Verdicts | None = None
    corpus: CorpusCounts | None = None  # token counts of a corpus, when one was counted
    comparison: Comparison | None = None  # against a second model with the same vocabulary (not saved)
    # each indicator's ranking, computed once per analysis (copies made with dataclasses.replace share it:
    # their scores are the same arrays)
    rankings: dict[tuple[str, str], Ranking] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.table)

    def suspicious_end(self, indicator: str) -> Direction:
        return INDICATORS[indicator].suspicious if indicator in INDICATORS else "high"

    def ensure_verdicts(self) -> Verdicts:
        if self.verdicts is None:
            self.verdicts = Verdicts.empty(len(self))
        return self.verdicts

    @property
    def known_unused(self) -> np.ndarray:
        """Tokens of the category known_unused: ranked after the discoveries by every ranking."""
        return self.table.category == KNOWN_UNUSED

    def ranking(self, indicator: str, end: Direction | None = None) -> Ranking:
        """The tokens ordered from the given end (default: the suspicious end) of an indicator, the
        known unused ones after all the others (so that discoveries are not buried under `<unusedN>`
        rows), and each token's rank; the one place ranks are computed."""
        key = (indicator, end or self.suspicious_end(indicator))
        if key not in self.rankings:
            self.rankings[key] = ranking(self.scores[indicator], key[1], self.known_unused)
        return self.rankings[key]

    def set_corpus(self, corpus: CorpusCounts) -> None:
        """Keep corpus counts and their indicator `corpus_rarity` (a new scores dict: snapshots that
        share the old one are not changed under them)."""
        if len(corpus.counts) != len(self):
            raise ValueError(f"corpus counts for {len(corpus.counts)} tokens, the analysis has {len(self)}")
        self.corpus = corpus
        self.scores = {**self.scores, CORPUS_RARITY: corpus.rarity()}
        self.rankings = {key: r for key, r in self.rankings.items() if key[0] != CORPUS_RARITY}

    def top(self, indicator: str, n: int, end: Direction | None = None) -> np.ndarray:
        """The ids of the `n` tokens at the given end (default: the suspicious end) of an indicator."""
        return self.ranking(indicator, end).order[:n]
