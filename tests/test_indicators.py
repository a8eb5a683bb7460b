"""Each indicator on a synthetic matrix with planted outliers: the planted rows must rank first
from the indicator's suspicious end, and ranking works from both ends."""

from __future__ import annotations

import numpy as np
import pytest

from glitchview.core.scores.clustering import kmeans
from glitchview.core.scores.indicators import INDICATORS, ScoringInputs, compute_all, rank_order, ranking

RNG = np.random.default_rng(7)
N, D, K = 3000, 24, 6


def _blobs() -> tuple[np.ndarray, np.ndarray]:
    centers = RNG.normal(0, 8, size=(K, D))
    labels = RNG.integers(0, K, N)
    return (centers[labels] + RNG.normal(0, 1, size=(N, D))).astype(np.float32), labels


def _inputs(matrix: np.ndarray, unembedding: np.ndarray | None = None,
            reference: np.ndarray | None = None) -> ScoringInputs:
    result = kmeans(matrix, K, seed=0)
    return ScoringInputs(matrix, matrix if unembedding is None else unembedding, result.labels, result.centers,
                         np.array([], dtype=np.int64) if reference is None else reference)


def _first(scores: np.ndarray, name: str, count: int, end: str | None = None) -> set[int]:
    return set(rank_order(scores, end or INDICATORS[name].suspicious)[:count].tolist())


def test_every_indicator_declares_direction_and_description() -> None:
    assert {"cluster_distance", "cluster_zscore", "centroid_distance", "norm", "unembedding_cosine",
            "unembedding_cosine_pc1"} <= set(INDICATORS)
    for ind in INDICATORS.values():
        assert ind.suspicious in ("low", "high")
        assert len(ind.description) > 20


@pytest.mark.parametrize("name", ["cluster_distance", "cluster_zscore"])
def test_far_from_own_centre_ranks_first(name: str) -> None:
    matrix, labels = _blobs()
    planted = np.array([10, 200, 1234])
    matrix[planted] += RNG.normal(0, 1, size=(3, D)).astype(np.float32) * 6  # pushed off their blob
    scores = compute_all(_inputs(matrix), [name])[name]
    assert _first(scores, name, 3, "high") == set(planted.tolist())  # the seed's end


def test_nearest_the_global_centroid_ranks_first() -> None:
    matrix, _ = _blobs()
    planted = np.array([5, 77, 999, 2500])
    matrix[planted] = matrix.mean(axis=0) + RNG.normal(0, 0.01, size=(4, D)).astype(np.float32)
    scores = compute_all(_inputs(matrix), ["centroid_distance"])["centroid_distance"]
    assert _first(scores, "centroid_distance", 4) == set(planted.tolist())


def test_small_norm_ranks_first() -> None:
    matrix, _ = _blobs()
    planted = np.array([3, 4, 2999])
    matrix[planted] = 1e-3
    scores = compute_all(_inputs(matrix), ["norm"])["norm"]
    assert _first(scores, "norm", 3) == set(planted.tolist())
    np.testing.assert_allclose(scores[0], np.linalg.norm(matrix[0].astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("name", ["unembedding_cosine", "unembedding_cosine_pc1"])
def test_rows_like_the_unused_reference_rank_first(name: str) -> None:
    matrix, _ = _blobs()
    unembedding = RNG.normal(0, 1, size=(N, D)).astype(np.float32) + 3.0  # a shared constant component
    untrained_direction = RNG.normal(0, 1, size=D).astype(np.float32)
    reference = np.arange(2900, 2920)
    planted = np.array([15, 1500, 2222])
    for rows in (reference, planted):
        unembedding[rows] = 3.0 + untrained_direction + RNG.normal(0, 0.05, size=(len(rows), D))
    scores = compute_all(_inputs(matrix, unembedding, reference), [name])[name]
    first = _first(scores, name, len(reference) + len(planted))
    assert set(planted.tolist()) <= first
    assert set(reference.tolist()) <= first


def test_pc1_removed_cosine_equals_the_explicit_computation() -> None:
    """The chunked, copy-free computation against the residual matrix built from a full eigen-decomposition."""
    wide = (RNG.normal(0, 1, size=(N, 160)) * np.r_[6.0, np.linspace(2, 0.5, 159)]).astype(np.float32) + 2.0
    reference = np.arange(100, 130)
    centred = wide - wide.mean(axis=0, dtype=np.float64).astype(np.float32)
    top = np.linalg.eigh(centred.T.astype(np.float64) @ centred)[1][:, -1].astype(np.float32)
    residual = centred - np.outer(centred @ top, top)
    ref = residual[reference].mean(axis=0)
    expected = 1.0 - residual @ ref / np.linalg.norm(ref) / np.linalg.norm(residual, axis=1)
    scores = compute_all(_inputs(wide, reference=reference), ["unembedding_cosine_pc1"])["unembedding_cosine_pc1"]
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_unembedding_indicator_is_nan_without_reference_tokens() -> None:
    matrix, _ = _blobs()
    scores = compute_all(_inputs(matrix), ["unembedding_cosine"])["unembedding_cosine"]
    assert np.isnan(scores).all()


def test_both_ends_are_rankable_and_nan_goes_last() -> None:
    scores = np.array([3.0, np.nan, 1.0, 2.0, 5.0])
    assert rank_order(scores, "low").tolist() == [2, 3, 0, 4, 1]
    assert rank_order(scores, "high").tolist() == [4, 0, 3, 2, 1]
    assert ranking(scores, "low").rank.tolist() == [3, 5, 1, 2, 4]


def test_cluster_zscore_is_standardised_within_each_cluster() -> None:
    matrix, _ = _blobs()
    inputs = _inputs(matrix)
    z = compute_all(inputs, ["cluster_zscore"])["cluster_zscore"]
    for c in range(K):
        members = z[inputs.labels == c]
        assert abs(members.mean()) < 1e-6
        assert abs(members.std() - 1.0) < 1e-6


def test_known_unused_tokens_rank_after_the_rest() -> None:
    scores = np.array([0.1, 0.5, 0.2, 0.0, np.nan])
    apart = np.array([False, False, False, True, False])
    assert rank_order(scores, "low", apart).tolist() == [0, 2, 1, 4, 3]
    assert ranking(scores, "low", apart).rank.tolist() == [1, 3, 2, 5, 4]
    assert rank_order(scores, "high", apart).tolist() == [1, 2, 0, 4, 3]


def test_glitch_score_needs_its_signals_to_agree() -> None:
    from glitchview.core.scores.indicators import GLITCH_SCORE_PARTS, combine_glitch_score

    n, rng = 100, np.random.default_rng(5)
    parts = {name: rng.permutation(n).astype(float) + 10 for name in GLITCH_SCORE_PARTS}
    for name in parts:  # token 7 sits at the low end of every part; token 3 only of the unembedding cosine
        parts[name][7] = 0.0
        parts[name][3] = np.median(parts[name])
    parts["unembedding_cosine"][3] = 1.0
    score = combine_glitch_score(parts)
    assert INDICATORS["glitch_score"].suspicious == "low" and rank_order(score, "low")[0] == 7
    assert 0 < score.min() and score.max() <= 1.0 and 1 < ranking(score, "low").rank[3] <= 35


def test_pc1_on_shared_axes_equals_its_own_computation() -> None:
    """A tied model's PC1 cosine reads the principal axes computed once for the map too."""
    from glitchview.core.scores.projection import principal_axes

    wide = (RNG.normal(0, 1, size=(N, 160)) * np.r_[6.0, 4.0, np.linspace(2, 0.5, 158)]).astype(np.float32) + 2.0
    reference = np.arange(100, 130)
    own = compute_all(_inputs(wide, reference=reference), ["unembedding_cosine_pc1"])["unembedding_cosine_pc1"]
    shared_inputs = _inputs(wide, reference=reference)
    shared_inputs = type(shared_inputs)(**{**shared_inputs.__dict__, "axes": principal_axes(wide, 2)})
    shared = compute_all(shared_inputs, ["unembedding_cosine_pc1"])["unembedding_cosine_pc1"]
    np.testing.assert_allclose(shared, own, atol=1e-5)
    mean, axes, variances, total = principal_axes(wide, 2)
    swapped = type(shared_inputs)(**{**shared_inputs.__dict__, "computed": {},
                                     "axes": (mean, axes[:, ::-1].copy(), variances[::-1], total)})
    other = compute_all(swapped, ["unembedding_cosine_pc1"])["unembedding_cosine_pc1"]
    assert np.abs(other - own).max() > 1e-2, "the given axes were not the ones used"


def test_an_opened_analysis_file_derives_glitch_score_as_this_version_does(tiny_hf, tmp_path) -> None:
    """glitch_score is derived from its parts: a file saved without it (before it existed) or with another
    definition's values gets this version's glitch_score when it is opened."""
    import dataclasses

    from glitchview.core.pipeline import ScanSettings, scan
    from glitchview.core.store.analysis_file import load_analysis, save_analysis

    analysis = scan(str(tiny_hf.path), ScanSettings(clusters=4))[1]
    expected = analysis.scores["glitch_score"]
    for stale in ({}, {"glitch_score": np.zeros_like(expected)}):
        scores = {name: values for name, values in analysis.scores.items() if name != "glitch_score"}
        old = dataclasses.replace(analysis, scores={**scores, **stale}, rankings={})
        opened = load_analysis(save_analysis(old, tmp_path / f"old{len(stale)}.gva.npz"))
        np.testing.assert_allclose(opened.scores["glitch_score"], expected)
