"""k-means quality against scikit-learn's full KMeans(n_init=10), reproducibility, cancellation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from glitchview.core.errors import Cancelled
from glitchview.core.progress import CancelToken
from glitchview.core.scores.clustering import inertia_of, kmeans


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
