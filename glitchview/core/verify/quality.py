"""How good is each indicator at finding real glitch tokens? Measured against the model's own
verification verdicts: precision at k, recall and ROC-AUC over the verified tokens, with the glitch
rate of a random sample of ordinary tokens as the base rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis import Analysis
from .verdicts import DECIDED_VERDICTS, is_glitch

KS = (50, 100, 500, 1000)


@dataclass(frozen=True)
class IndicatorQuality:
    indicator: str
    end: str
    precision_at: dict[int, float]  # k -> share of verified glitches among the verified of the top k
    verified_at: dict[int, int]  # k -> how many of the top k were verified
    recall: float  # share of all verified glitches inside the top max(k) verified
    roc_auc: float
    n_verified: int


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    from scipy.stats import rankdata  # scipy.stats takes half a second to import: only when measuring

    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def indicator_quality(analysis: Analysis, verdicts: np.ndarray, ks: tuple[int, ...] = KS) -> list[IndicatorQuality]:
    """Quality of every indicator (from its suspicious end) against the decided verdicts."""
    decided = np.isin(verdicts, DECIDED_VERDICTS)
    glitch = is_glitch(verdicts)
    out = []
    for name, scores in analysis.scores.items():
        end = analysis.suspicious_end(name)
        order = analysis.ranking(name).order
        precision, verified = {}, {}
        for k in ks:
            top = order[:k]
            verified[k] = int(decided[top].sum())
            precision[k] = float(glitch[top].sum() / verified[k]) if verified[k] else float("nan")
        top_all = order[: max(ks)]
        recall = float(glitch[top_all].sum() / glitch.sum()) if glitch.any() else float("nan")
        oriented = -scores if end == "low" else scores
        ids = np.flatnonzero(decided & np.isfinite(scores))
        out.append(IndicatorQuality(name, end, precision, verified, recall, roc_auc(oriented[ids], glitch[ids]),
                                    int(decided.sum())))
    return out


def base_rate(verdicts: np.ndarray, sample: np.ndarray) -> float:
    """Glitch share among the decided tokens of a random sample."""
    decided = sample[np.isin(verdicts[sample], DECIDED_VERDICTS)]
    return float(is_glitch(verdicts[decided]).mean()) if len(decided) else float("nan")


def precision_curve(order: np.ndarray, verdicts: np.ndarray, n: int) -> np.ndarray:
    """Precision at every k = 1..n down an indicator's ranking, over the decided verdicts
    (NaN until the first decided token)."""
    top = order[:n]
    decided = np.cumsum(np.isin(verdicts[top], DECIDED_VERDICTS))
    glitch = np.cumsum(is_glitch(verdicts[top]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(decided > 0, glitch / np.maximum(decided, 1), np.nan)


def verification_ids(analysis: Analysis, indicators: list[str], top: int, sample: int,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The tokens to verify to measure indicators: the top N of each, plus a random sample of
    ordinary tokens (not special, not among the tops) as the base rate. Returns (all ids, sample)."""
    tops = np.unique(np.concatenate([analysis.top(name, top) for name in indicators]))
    ordinary = np.setdiff1d(np.flatnonzero(~analysis.table.flags["special"] & ~analysis.table.flags["no_token"]), tops)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(ordinary, min(sample, len(ordinary)), replace=False))
    return np.union1d(tops, picked), picked
