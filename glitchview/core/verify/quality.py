"""How good is each indicator at finding real glitch tokens? Measured against the model's own
verification verdicts: precision at k (every token of the top k in the denominator, with how many of
them were verified, uncertain or unverified beside it), recall and ROC-AUC over the decided tokens,
with the glitch rate of a random sample of ordinary tokens as the base rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis import Analysis
from .verdicts import DECIDED_VERDICTS, Verdict, is_glitch

KS = (50, 100, 500, 1000)
UNDECIDED = (Verdict.UNCERTAIN,)
UNCONFIRMED = (Verdict.UNVERIFIED, Verdict.SUSPECT)  # a screening suspicion is not a verdict


@dataclass(frozen=True)
class IndicatorQuality:
    """How one indicator's top k fares against the verdicts. Every precision counts every token of
    the top k in its denominator: an uncertain or unverified token counts as not glitch, and the
    counts say how much of the top k was actually verified."""

    indicator: str
    end: str
    precision_at: dict[int, float]  # k -> verified glitches among all k tokens of the top k
    glitch_at: dict[int, int]  # k -> verified glitches in the top k
    verified_at: dict[int, int]  # k -> tokens of the top k with a verdict (glitch, normal or crash)
    uncertain_at: dict[int, int]  # k -> tokens of the top k whose verdict is uncertain
    unverified_at: dict[int, int]  # k -> tokens of the top k never verified (or only screened: suspect)
    recall: float  # share of all verified glitches inside the top max(k)
    roc_auc: float  # over the decided tokens (glitch or normal)
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
    """Quality of every indicator (from its suspicious end, known unused tokens apart) against the
    verdicts."""
    decided = np.isin(verdicts, DECIDED_VERDICTS)
    glitch = is_glitch(verdicts)
    uncertain = np.isin(verdicts, UNDECIDED)
    unconfirmed = np.isin(verdicts, UNCONFIRMED)
    out = []
    for name, scores in analysis.scores.items():
        end = analysis.suspicious_end(name)
        order = analysis.ranking(name).order
        tops = {k: order[:k] for k in ks}
        n_glitch = {k: int(glitch[top].sum()) for k, top in tops.items()}
        unc = {k: int(uncertain[top].sum()) for k, top in tops.items()}
        unv = {k: int(unconfirmed[top].sum()) for k, top in tops.items()}
        precision = {k: n_glitch[k] / len(top) if len(top) else float("nan") for k, top in tops.items()}
        verified = {k: len(top) - unc[k] - unv[k] for k, top in tops.items()}
        recall = float(glitch[order[: max(ks)]].sum() / glitch.sum()) if glitch.any() else float("nan")
        oriented = -scores if end == "low" else scores
        ids = np.flatnonzero(decided & np.isfinite(scores))
        out.append(IndicatorQuality(name, end, precision, n_glitch, verified, unc, unv, recall,
                                    roc_auc(oriented[ids], glitch[ids]), int(decided.sum())))
    return out


@dataclass(frozen=True)
class QualityTable:
    """The indicator-quality table as text cells, the same for the command line and the window."""

    columns: list[str]
    rows: list[list[str]]
    notes: list[str]


def quality_table(analysis: Analysis, verdicts: np.ndarray, ks: tuple[int, ...], sample: np.ndarray) -> QualityTable:
    """One row per indicator: per k the precision and the verified / uncertain / unverified counts of
    its top k, then recall and ROC-AUC; notes say how to read it and give the base rate."""
    columns = ["indicator", "end"]
    for k in ks:
        columns += [f"P@{k}", f"verified@{k}", f"uncertain@{k}", f"unverified@{k}"]
    columns += ["recall", "ROC-AUC"]
    rows = []
    for q in indicator_quality(analysis, verdicts, ks):
        cells = [q.indicator, q.end]
        for k in ks:
            cells += [f"{q.precision_at[k]:.2f}", str(q.verified_at[k]), str(q.uncertain_at[k]), str(q.unverified_at[k])]
        rows.append([*cells, f"{q.recall:.2f}", f"{q.roc_auc:.3f}"])
    notes = ["P@k = verified glitch tokens / k: uncertain and unverified tokens of the top k count as not glitch",
             f"base rate (random sample of {len(sample)} ordinary tokens): {base_rate(verdicts, sample):.3f}"]
    return QualityTable(columns, rows, notes)


def base_rate(verdicts: np.ndarray, sample: np.ndarray) -> float:
    """Glitch share among the decided tokens of a random sample."""
    decided = sample[np.isin(verdicts[sample], DECIDED_VERDICTS)]
    return float(is_glitch(verdicts[decided]).mean()) if len(decided) else float("nan")


def precision_curve(order: np.ndarray, verdicts: np.ndarray, n: int) -> np.ndarray:
    """Precision at every k = 1..n down an indicator's ranking: verified glitches among all k tokens."""
    top = order[:n]
    return np.cumsum(is_glitch(verdicts[top])) / np.arange(1, len(top) + 1)


def verification_ids(analysis: Analysis, indicators: list[str], top: int, sample: int,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The tokens to verify to measure indicators: the top N of each, plus a random sample of
    ordinary tokens (not special, not among the tops) as the base rate. Returns (all ids, sample)."""
    tops = np.unique(np.concatenate([analysis.top(name, top) for name in indicators]))
    table = analysis.table
    ordinary = np.setdiff1d(np.flatnonzero(~table.flags["special"] & ~table.flags["no_token"] & ~analysis.known_unused),
                            tops)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(ordinary, min(sample, len(ordinary)), replace=False))
    return np.union1d(tops, picked), picked
