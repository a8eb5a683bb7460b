"""A learning detector: verify a few hundred informative tokens, fit a small classifier on every
indicator plus token features, and re-rank the whole vocabulary with it.

No single embedding score separates glitch tokens well on every model (on SmolLM2 end-of-text and
punctuation runs are invisible to all of them), but together with the tokenizer's view of a token
(category, flags, byte length, its structure among the other tokens: `model/token_structure.py`) they
may do better (on SmolLM2 they tie the best indicator: README, Benchmarks). The verified tokens are the
labels; the classifier is a class-balanced logistic regression on standardised features, small enough to
fit in a fraction of a second and to read (its coefficients are reported). Its quality is measured where
it was not trained: out-of-fold on the verified tokens beside each single indicator, and on the top of its new ranking,
which `hunt` verifies afresh."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis import Analysis
from ..model.token_structure import STRUCTURE, fragment_likeness
from ..model.vocab import CATEGORIES, FLAGS
from ..verify.verdicts import DECIDED_VERDICTS, is_glitch, is_verified
from .indicators import suspicion_percentile


def token_features(analysis: Analysis) -> tuple[np.ndarray, list[str]]:
    """One row per token: each indicator as a percentile from its low end, as its distance from the
    middle and as the log of its rank from either end (so both ends, and the extreme tail where glitch
    tokens sit, are usable by a linear model), the flags, the category (one-hot), the log byte
    length, the token's place in the vocabulary (BPE merges learnt late are rarer in the training text)
    and its structure among the other tokens (`token_structure`: longer tokens that extend it, merges that
    consume it; counts as log(1 + count)); a table without structure columns gives zeros there."""
    table = analysis.table
    columns: list[np.ndarray] = []
    names: list[str] = []
    for name, scores in analysis.scores.items():
        percentile = suspicion_percentile(scores, "low")
        from_high = 1 + 1 / len(table) - percentile
        columns += [percentile, np.abs(percentile - 0.5), np.log10(percentile), np.log10(from_high)]
        names += [f"{name} (percentile from low)", f"{name} (either end)", f"{name} (log rank from low)",
                  f"{name} (log rank from high)"]
    for flag in FLAGS:
        columns.append(table.flags[flag].astype(np.float64))
        names.append(f"flag {flag}")
    for code, category in enumerate(CATEGORIES):
        columns.append((table.category == code).astype(np.float64))
        names.append(f"category {category}")
    columns.append(np.log1p(np.fromiter((len(b) for b in table.token_bytes), dtype=np.float64, count=len(table))))
    names.append("log byte length")
    columns.append(np.arange(len(table), dtype=np.float64) / max(len(table) - 1, 1))
    names.append("id / vocabulary size")
    for name in STRUCTURE:
        values = table.structure.get(name, np.zeros(len(table)))
        columns.append(values if name in _SHARES else np.log1p(values))
        names.append(name if name in _SHARES else f"log(1 + {name})")
    return np.column_stack(columns), names


_SHARES = ("consumed_share", "next_merge_ratio")  # already 0..1; the other structure columns are counts


def pick_to_verify(analysis: Analysis, budget: int, already: np.ndarray, seed: int = 0,
                   top_share: float = 2 / 3, scores: np.ndarray | None = None) -> np.ndarray:
    """`budget` tokens worth verifying, never tokens already verified (or excluded through `already`),
    known unused ones or rows without a token: `top_share` of them taken in turn from the top of several
    rankings, the rest a random sample (the base rate). Without detector `scores` the rankings are every
    indicator and the most fragment-like tokens (`fragment_likeness`: leftover BPE pieces such as ` Citiz`,
    which no embedding indicator ranks first): where the glitch tokens and the hard look-alikes are. With
    `scores` (a detector fitted on the verdicts so far): its own top (what it would report: its false
    alarms are the most useful labels) and the tokens it is least sure of (P(glitch) nearest 0.5)."""
    usable = ~already & ~analysis.known_unused & ~analysis.table.flags["no_token"]
    if scores is not None:
        rankings = [np.argsort(-scores, kind="stable"), np.argsort(np.abs(scores - 0.5), kind="stable")]
    else:
        rankings = [analysis.ranking(name).order for name in analysis.scores]
        fragments = fragment_likeness(analysis.table.structure, len(analysis))
        if fragments.any():
            rankings.append(np.argsort(-fragments, kind="stable"))
    chosen = _in_turn([order[usable[order]] for order in rankings], int(budget * top_share))
    rest = np.setdiff1d(np.flatnonzero(usable), np.asarray(chosen, dtype=np.int64))
    rng = np.random.default_rng(seed)
    sample = rng.choice(rest, min(budget - len(chosen), len(rest)), replace=False)
    return np.unique(np.concatenate([np.asarray(chosen, dtype=np.int64), sample]))


def _in_turn(orders: list[np.ndarray], n: int) -> list[int]:
    """The first `n` distinct tokens taking the heads of `orders` in turn."""
    chosen: list[int] = []
    seen = set()
    depth = 0
    while len(chosen) < n and depth < max((len(order) for order in orders), default=0):
        for order in orders:
            if depth < len(order) and int(order[depth]) not in seen:
                seen.add(int(order[depth]))
                chosen.append(int(order[depth]))
        depth += 1
    return chosen[:n]


CLASSIFIERS = ("logistic", "boosting")


def _classifier(kind: str = "logistic") -> Any:
    """A class-balanced logistic regression on standardised features, or shallow gradient-boosted trees."""
    if kind == "boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200, l2_regularization=1.0,
                                              class_weight="balanced", random_state=0)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000, C=0.5))


@dataclass
class DetectorResult:
    scores: np.ndarray  # P(glitch) for every token
    n_train: int
    n_glitch: int
    held_out: dict[str, float]  # ranking -> precision at k among the held-out verified tokens
    k: int
    weights: list[tuple[str, float]]  # the largest standardised coefficients


def fit_detector(analysis: Analysis, verdicts: np.ndarray, k: int = 50, folds: int = 5,
                 seed: int = 0, kind: str = "logistic") -> DetectorResult:
    """Fit on the decided verdicts (glitch or normal), score every token, and measure out-of-fold:
    every verified token gets a score from a model that did not see it; precision at k of that ranking
    of the verified tokens is set beside each indicator's ranking of the same tokens."""
    from sklearn.model_selection import StratifiedKFold

    features, names = token_features(analysis)
    train = np.flatnonzero(np.isin(verdicts, DECIDED_VERDICTS))
    labels = is_glitch(verdicts[train])
    if labels.sum() < folds or (~labels).sum() < folds:
        raise ValueError(f"too few verified glitch ({int(labels.sum())}) or normal ({int((~labels).sum())}) tokens "
                         f"to fit a detector: verify more")
    out_of_fold = np.empty(len(train))
    for fit_rows, test_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(train, labels):
        model = _classifier(kind).fit(features[train[fit_rows]], labels[fit_rows])
        out_of_fold[test_rows] = model.predict_proba(features[train[test_rows]])[:, 1]
    held_out = {"detector (out-of-fold)": _precision_at(np.argsort(-out_of_fold, kind="stable"), labels, k)}
    for name in analysis.scores:
        rank = analysis.ranking(name).rank[train]
        held_out[name] = _precision_at(np.argsort(rank, kind="stable"), labels, k)
    model = _classifier(kind).fit(features[train], labels)
    weights: list[tuple[str, float]] = []
    if kind == "logistic":
        coefficients = model[-1].coef_[0]
        weights = [(names[i], float(coefficients[i])) for i in np.argsort(-np.abs(coefficients))[:6]]
    return DetectorResult(model.predict_proba(features)[:, 1], len(train), int(labels.sum()), held_out, k, weights)


def learn(analysis: Analysis, verify: Callable[[np.ndarray], np.ndarray], budget: int, already: np.ndarray,
          seed: int = 0, k: int = 50, kind: str = "logistic") -> DetectorResult:
    """Two rounds of learning within `budget` verifications: two thirds from the tops of every indicator
    and of the most fragment-like tokens and at random, then the rest from the top of a detector fitted on
    every verdict so far, where it is least sure, and at random; the detector is fitted on all.
    `verify(ids)` verifies tokens and records their verdicts in the analysis; `already` marks tokens not
    to pick (verified ones, or ones held out from learning)."""
    verdicts = analysis.ensure_verdicts()
    first = budget - budget // 3
    verify(pick_to_verify(analysis, first, already | is_verified(verdicts.verdict), seed))
    try:
        scores = fit_detector(analysis, verdicts.verdict, k, seed=seed, kind=kind).scores
    except ValueError:  # too few glitch tokens yet to know where the detector is unsure
        scores = None
    verify(pick_to_verify(analysis, budget - first, already | is_verified(verdicts.verdict), seed + 1,
                          scores=scores))
    return fit_detector(analysis, verdicts.verdict, k, seed=seed, kind=kind)


def _precision_at(order: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = order[:k]
    return float(labels[top].sum() / len(top)) if len(top) else float("nan")
