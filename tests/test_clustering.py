"""k-means quality against scikit-learn's full KMeans(n_init=10), centres captured by outliers,
reproducibility, cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from glitchview.core.errors import Cancelled
from glitchview.core.progress import CancelToken
from glitchview.core.scores.clustering import _repair_small_clusters, _Rows, _shifted_sq_norms, inertia_of, kmeans


def _data(n: int = 6000, d: int = 32, k: int = 12, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(k, d))  # overlapping blobs: a real optimisation problem
    return (centers[rng.integers(0, k, n)] + rng.normal(0, 1.5, size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("k", [5, 20])
def test_inertia_within_one_percent_of_sklearn_full_kmeans(k: int) -> None:
    x = _data()
    ours = kmeans(x, k, seed=0)
    ref = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x)
    ref_inertia = inertia_of(x, ref.labels_, ref.cluster_centers_.astype(np.float32))
    assert ours.inertia <= ref_inertia * 1.01
    assert np.isclose(ours.inertia, inertia_of(x, ours.labels, ours.centers))
    assert ours.labels.shape == (len(x),) and set(np.unique(ours.labels)) == set(range(k))


def test_seeded_runs_are_identical_and_labels_match_nearest_centre() -> None:
    x = _data(seed=5)
    a, b = kmeans(x, 8, seed=11), kmeans(x, 8, seed=11)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    d = ((x[:, None, :].astype(np.float64) - a.centers[None].astype(np.float64)) ** 2).sum(-1)
    assert (d.argmin(1) == a.labels).mean() > 0.999


def test_cancel_stops_the_job() -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        kmeans(_data(), 10, cancel=token)


def test_cancel_midway_through_progress() -> None:
    token = CancelToken()
    seen: list[str] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if len(seen) == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        kmeans(_data(), 10, progress=progress, cancel=token)
    assert len(seen) == 2  # nothing ran after the cancel


def test_bad_k_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="between 1 and"):
        kmeans(_data(n=10), 11)


def _state(x: np.ndarray, centers: np.ndarray) -> tuple[_Rows, torch.Tensor, torch.Tensor, float]:
    """Rows, shifted centres, nearest-centre labels and inertia, as k-means holds them."""
    rows_x = torch.from_numpy(x)
    shift = rows_x.mean(0)
    rows = _Rows(rows_x, shift, _shifted_sq_norms(rows_x, shift))
    shifted = torch.from_numpy(centers) - shift
    best, labels = rows.sq_distances(shifted).min(1)
    return rows, shifted, labels, float(best.double().sum())


def _blobs(rng: np.random.Generator, where: list[float], n: int = 1000, d: int = 8) -> np.ndarray:
    return np.concatenate([rng.normal(0, 1, (n, d)) + np.eye(d)[0] * w for w in where]).astype(np.float32)


def test_a_centre_captured_by_an_outlier_moves_to_where_the_error_is() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([_blobs(rng, [0.0, 12.0]), np.full((1, 8), 9.0, dtype=np.float32)])  # two blobs, one outlier
    rows, centers, labels, inertia = _state(x, np.stack([x[-1], x[:2000].mean(0)]))  # one centre on the outlier
    centers, labels, repaired = _repair_small_clusters(rows, centers, labels, inertia, torch.Generator().manual_seed(0),
                                                       100, 1e-6, CancelToken())
    assert repaired < 0.5 * inertia
    assert sorted(np.bincount(labels.numpy()).tolist()) in ([1000, 1001], [1000, 1000])  # a centre per blob
    assert np.isclose(repaired, inertia_of(x, labels.numpy(), (centers + rows.shift).numpy()), rtol=1e-5)


def test_a_far_tight_group_keeps_its_own_centre() -> None:
    """Ten identical far rows (untrained tokens) are a small cluster, but moving their centre would
    cost far more than it gains: the try is dropped."""
    rng = np.random.default_rng(1)
    group = np.full((10, 8), 40.0, dtype=np.float32)
    x = np.concatenate([_blobs(rng, [0.0, 12.0]), group])
    rows, centers, labels, inertia = _state(x, np.stack([x[:1000].mean(0), x[1000:2000].mean(0), group[0]]))
    after = _repair_small_clusters(rows, centers, labels, inertia, torch.Generator().manual_seed(0), 100, 1e-6,
                                   CancelToken())
    assert after[2] == inertia
    torch.testing.assert_close(after[0], centers)
    result = kmeans(x, 3, seed=0)  # and the whole k-means gives the group its own cluster
    assert len(set(result.labels[-10:])) == 1 and (result.labels == result.labels[-1]).sum() == 10
