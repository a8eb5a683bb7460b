"""Every per-token glitch indicator, vectorised over the whole vocabulary.

An indicator is one small function registered with `@indicator(...)`: it declares which end of
its scale is suspicious and a one-line description, and computes one float per token from the
`ScoringInputs`. Distance indicators are ranked from both ends by the tools (see `rank_order`),
because the seed's "far from the centre" and SolidGoldMagikarp's "nearest the centroid" both hold
on some models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .projection import Axes, principal_axes

Direction = Literal["low", "high"]
CHUNK_FLOATS = 1 << 23  # 32 MB row blocks, whatever the width (measured: smaller blocks cost more in BLAS calls)


@dataclass(frozen=True)
class ScoringInputs:
    """What indicators are computed from. `unembedding` is the input matrix when tied."""

    embeddings: np.ndarray
    unembedding: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    reference_ids: np.ndarray
    computed: dict[str, np.ndarray] = field(default_factory=dict)  # indicators already computed on these inputs
    axes: Axes | None = None  # the input matrix's principal axes, when computed once for the map and PC1


@dataclass(frozen=True)
class Indicator:
    name: str
    suspicious: Direction
    description: str
    compute: Callable[[ScoringInputs], np.ndarray]
    ends: dict[str, str] = field(default_factory=dict)  # what each end of the scale shows, where measured

    def end_label(self, end: Direction) -> str:
        """'suspicious end' / 'other end', or what that end is measured to show."""
        return self.ends.get(end, "suspicious end" if end == self.suspicious else "other end")


INDICATORS: dict[str, Indicator] = {}


def indicator(name: str, suspicious: Direction, description: str, ends: dict[str, str] | None = None) -> Callable:
    """Register an indicator function under `name` (`ends` labels what each end shows)."""

    def register(func: Callable[[ScoringInputs], np.ndarray]) -> Callable[[ScoringInputs], np.ndarray]:
        INDICATORS[name] = Indicator(name, suspicious, description, func, dict(ends or {}))
        return func

    return register


def short_name(name: str) -> str:
    """A column-header form of an indicator name (unemb_cosine, cluster_dist, ...)."""
    return name.replace("unembedding_", "unemb_").replace("_distance", "_dist")


def row_norms(matrix: np.ndarray) -> np.ndarray:
    """L2 norm of every row, accumulated in float64."""
    return np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64))


def distances_to(matrix: np.ndarray, points: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Euclidean distance of every row to every point (n x k), by the norm trick in row chunks;
    each chunk's cross term is computed on centred data so float32 loses no precision."""
    shift = points.mean(axis=0, dtype=np.float64).astype(np.float32)
    pts = (points - shift).astype(np.float32)
    p2 = np.einsum("ij,ij->i", pts, pts, dtype=np.float64)
    out = np.empty((matrix.shape[0], points.shape[0]), dtype=np.float64)
    for start in range(0, matrix.shape[0], chunk):
        block = matrix[start:start + chunk] - shift
        x2 = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        cross = (block @ pts.T).astype(np.float64)
        out[start:start + chunk] = x2[:, None] - 2.0 * cross + p2[None, :]
    return np.sqrt(np.maximum(out, 0.0))


def own_center_distance(embeddings: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Distance of each token to the centre of its own cluster."""
    return distances_to(embeddings, centers)[np.arange(len(labels)), labels]


@indicator("cluster_distance", "low",
           "distance to its own k-means centre (the seed's score, which ranks its high end first); on real "
           "models the glitch tokens sit at the low end, in the tight knot barely trained rows form",
           ends={"low": "low end: the knot of barely trained tokens (finds glitch tokens on Gemma-3 and SmolLM2)",
                 "high": "high end: the seed's direction (finds none of Gemma-3's verified list in its top 2%)"})
def cluster_distance(inputs: ScoringInputs) -> np.ndarray:
    return own_center_distance(inputs.embeddings, inputs.labels, inputs.centers)


@indicator("cluster_zscore", "high", "distance to its own k-means centre as a z-score within its cluster")
def cluster_zscore(inputs: ScoringInputs) -> np.ndarray:
    dist = own_center_distance(inputs.embeddings, inputs.labels, inputs.centers)
    k = inputs.centers.shape[0]
    count = np.maximum(np.bincount(inputs.labels, minlength=k), 1)
    mean = np.bincount(inputs.labels, weights=dist, minlength=k) / count
    var = np.bincount(inputs.labels, weights=dist**2, minlength=k) / count - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    return (dist - mean[inputs.labels]) / np.where(std > 0, std, 1.0)[inputs.labels]


@indicator("centroid_distance", "low",
           "distance to the global mean embedding (SolidGoldMagikarp: glitch tokens sit nearest it)")
def centroid_distance(inputs: ScoringInputs) -> np.ndarray:
    centroid = inputs.embeddings.mean(axis=0, dtype=np.float64)[None, :]
    return distances_to(inputs.embeddings, centroid)[:, 0]


@indicator("norm", "low", "L2 norm of the input embedding row (Magikarp's indicator for untied models)")
def norm(inputs: ScoringInputs) -> np.ndarray:
    return row_norms(inputs.embeddings)


def _cosine_distance_to_reference(matrix: np.ndarray, reference_ids: np.ndarray) -> np.ndarray:
    if reference_ids.size == 0:
        return np.full(matrix.shape[0], np.nan)
    ref = matrix[reference_ids].mean(axis=0, dtype=np.float64)
    ref /= max(np.linalg.norm(ref), 1e-12)
    sims = (matrix @ ref.astype(np.float32)).astype(np.float64) / np.maximum(row_norms(matrix), 1e-12)
    return 1.0 - sims


def cosine_without_first_component(matrix: np.ndarray, reference_ids: np.ndarray,
                                   known: Axes | None = None) -> np.ndarray:
    """`_cosine_distance_to_reference` of the matrix centred and with its first principal component
    (from `known` axes of this matrix when given) projected out, in row chunks: no residual copy of the
    matrix is made (a residual's dot products and norm follow from the centred row's, its projection
    and its norm)."""
    if reference_ids.size == 0:
        return np.full(matrix.shape[0], np.nan)
    mean, axes, _, _ = known or principal_axes(matrix, 1)
    top = axes[:, 0]
    centred_ref = matrix[reference_ids] - mean
    ref = (centred_ref - np.outer(centred_ref @ top, top)).mean(axis=0, dtype=np.float64)
    ref = (ref / max(np.linalg.norm(ref), 1e-12)).astype(np.float32)
    both = np.stack([top, ref], axis=1)
    overlap = float(top @ ref)  # zero up to rounding
    out = np.empty(matrix.shape[0], dtype=np.float64)
    chunk = max(1, CHUNK_FLOATS // matrix.shape[1])
    for start in range(0, matrix.shape[0], chunk):
        centred = matrix[start:start + chunk] - mean
        along = (centred @ both).astype(np.float64)
        residual_sq = np.einsum("ij,ij->i", centred, centred).astype(np.float64) - along[:, 0] ** 2
        out[start:start + chunk] = ((along[:, 1] - along[:, 0] * overlap)
                                    / np.maximum(np.sqrt(np.maximum(residual_sq, 0.0)), 1e-12))
    return 1.0 - out


@indicator("unembedding_cosine", "low",
           "cosine distance of the unembedding row to the mean of reference unused tokens "
           "(Land & Bartolo's main indicator)")
def unembedding_cosine(inputs: ScoringInputs) -> np.ndarray:
    return _cosine_distance_to_reference(inputs.unembedding, inputs.reference_ids)


@indicator("unembedding_cosine_pc1", "low",
           "as unembedding_cosine, after removing the mean and first principal component")
def unembedding_cosine_pc1(inputs: ScoringInputs) -> np.ndarray:
    tied = inputs.unembedding is inputs.embeddings  # then the map's principal axes are this matrix's
    return cosine_without_first_component(inputs.unembedding, inputs.reference_ids, inputs.axes if tied else None)


def computed(inputs: ScoringInputs, name: str) -> np.ndarray:
    """One indicator on these inputs, computed once (indicators built on others reuse them)."""
    if name not in inputs.computed:
        inputs.computed[name] = np.asarray(INDICATORS[name].compute(inputs), dtype=np.float64)
    return inputs.computed[name]


def compute_all(inputs: ScoringInputs, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Compute the named indicators (all by default) as float64 arrays."""
    return {name: computed(inputs, name) for name in (names or list(INDICATORS))}


def suspicion_percentile(scores: np.ndarray, end: Direction) -> np.ndarray:
    """Each token's rank from the suspicious `end` as a fraction in (0, 1] (ties share their mean
    rank, NaN counts as least suspicious): 0.01 means "in the most suspicious 1%"."""
    from scipy.stats import rankdata

    return rankdata(_suspicion_key(scores, end), method="average") / len(scores)


def _suspicion_key(scores: np.ndarray, end: Direction) -> np.ndarray:
    """A key that sorts the given end first and NaN last."""
    return np.where(np.isnan(scores), np.inf, scores if end == "low" else -scores)


# What glitch_score combines, each from the end measured to find glitch tokens on real models, with its
# weight. Measured (bench/bench_glitch_score.py: Gemma-3 against 172 published verified tokens; the full test
# of each variant's top 50 and 100 on SmolLM2): with unembedding_cosine_pc1 x2 and unembedding_cosine, recall
# 1.000/1.000/1.000 in the top 1/2/5% and P@50 0.64, P@100 0.39; the earlier parts (unembedding_cosine x2 and
# the low ends of cluster_distance and centroid_distance) 0.994/1.000/1.000, 0.56, 0.29. An analysis file
# keeps the parts, and glitch_score is derived from them again when it is opened.
GLITCH_SCORE_PARTS: dict[str, tuple[Direction, float]] = {
    "unembedding_cosine_pc1": ("low", 2.0),
    "unembedding_cosine": ("low", 1.0),
}


@indicator("glitch_score", "low",
           "recommended: weighted mean of the suspicion percentiles of the low ends of unembedding_cosine_pc1 "
           "(x2) and unembedding_cosine; 0.01 = among the most suspicious 1%")
def glitch_score(inputs: ScoringInputs) -> np.ndarray:
    return combine_glitch_score({name: computed(inputs, name) for name in GLITCH_SCORE_PARTS})


# the recommended score leads every list of indicators (menus, table columns, colourings)
for _name in [n for n in INDICATORS if n != "glitch_score"]:
    INDICATORS[_name] = INDICATORS.pop(_name)


def combine_glitch_score(parts: dict[str, np.ndarray],
                         recipe: dict[str, tuple[Direction, float]] = GLITCH_SCORE_PARTS) -> np.ndarray:
    """glitch_score from its parts' values (so an opened analysis file derives it as this version does);
    another `recipe` (part -> suspicious end, weight) gives a candidate combination to measure."""
    total = sum(weight for _, weight in recipe.values())
    return sum(weight * suspicion_percentile(parts[name], end) for name, (end, weight) in recipe.items()) / total


def rank_order(scores: np.ndarray, end: Direction, apart: np.ndarray | None = None) -> np.ndarray:
    """Token ids from the given end of the scale first (NaN last), stable for ties; tokens in the
    `apart` mask (known unused ones) come after all the others, in the same order among themselves."""
    key = _suspicion_key(scores, end)
    if apart is None or not apart.any():
        return np.argsort(key, kind="stable")
    return np.lexsort((key, apart))


@dataclass(frozen=True)
class Ranking:
    order: np.ndarray  # token ids from the chosen end first (NaN and the `apart` tokens last)
    rank: np.ndarray  # 1-based rank of every token in that order


def ranking(scores: np.ndarray, end: Direction, apart: np.ndarray | None = None) -> Ranking:
    order = rank_order(scores, end, apart)
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order] = np.arange(1, len(scores) + 1)
    return Ranking(order, rank)
