"""How good is each indicator at finding real glitch tokens? Measured against the model's own
verification verdicts: precision at k, recall and ROC-AUC over the verified tokens, with the glitch
rate of a random sample of ordinary tokens as the base rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from .analysis import Analysis
from .indicators import rank_order
from .probing import VERDICTS

KS = (50, 100, 500, 1000)
GLITCH = {VERDICTS.index("strong_glitch"), VERDICTS.index("glitch")}
DECIDED = GLITCH | {VERDICTS.index("normal")}


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
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def indicator_quality(analysis: Analysis, verdicts: np.ndarray, ks: tuple[int, ...] = KS) -> list[IndicatorQuality]:
    """Quality of every indicator (from its suspicious end) against the decided verdicts."""
    decided = np.isin(verdicts, list(DECIDED))
    glitch = np.isin(verdicts, list(GLITCH))
    out = []
    for name, scores in analysis.scores.items():
        end = analysis.suspicious_end(name)
        order = rank_order(scores, end)
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
    decided = sample[np.isin(verdicts[sample], list(DECIDED))]
    return float(np.isin(verdicts[decided], list(GLITCH)).mean()) if len(decided) else float("nan")
