"""PCA against scikit-learn, UMAP in its child process (result and cancellation)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from glitchview.core.errors import Cancelled
from glitchview.core.progress import CancelToken
from glitchview.core.scores.projection import UmapRoute, pca, umap_projection


def _blobs(n: int = 1200, d: int = 16, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, n)
    centers = rng.normal(0, 10, size=(k, d))
    return (centers[labels] + rng.normal(0, 1, size=(n, d))).astype(np.float32), labels


# 16: the covariance route; 256: the randomized subspace iteration; with a small sample size, a tall
# matrix's route (subspace settled on a row sample, then one pass over every row)
@pytest.mark.parametrize("d, sample_rows", [(16, 32_768), (256, 32_768), (256, 300)])
def test_pca_matches_sklearn(d: int, sample_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from glitchview.core.scores import projection

    monkeypatch.setattr(projection, "AXES_SAMPLE_ROWS", sample_rows)
    x, _ = _blobs(d=d)
    coords, ratio = pca(x, 2)
    ref = PCA(2).fit(x)
    expected = ref.transform(x)
    for c in range(2):
        assert abs(np.corrcoef(coords[:, c], expected[:, c])[0, 1]) > 0.9999
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_array_equal(coords, pca(x, 2)[0])  # deterministic, signs fixed


def test_umap_separates_clusters() -> None:
    x, labels = _blobs()
    messages: list[str] = []
    coords = umap_projection(x, progress=lambda f, m: messages.append(m))
    assert coords.shape == (len(x), 2) and np.isfinite(coords).all()
    means = np.array([coords[labels == c].mean(0) for c in range(3)])
    spread = max(coords[labels == c].std(0).max() for c in range(3))
    gaps = [np.linalg.norm(means[a] - means[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > 2 * spread
    assert messages[-1] == "UMAP done"


def test_umap_of_a_sample_places_every_point_and_is_reproducible() -> None:
    x, labels = _blobs()
    route = UmapRoute(sample=400)
    coords = umap_projection(x, seed=3, route=route)
    np.testing.assert_array_equal(coords, umap_projection(x, seed=3, route=route))
    means = np.array([coords[labels == c].mean(0) for c in range(3)])
    spread = max(coords[labels == c].std(0).max() for c in range(3))
    assert min(np.linalg.norm(means[a] - means[b]) for a in range(3) for b in range(a + 1, 3)) > 2 * spread


def test_umap_cancel_stops_within_a_second() -> None:
    x, _ = _blobs(n=20_000)
    token = CancelToken()
    timer = threading.Timer(1.0, token.cancel)
    timer.start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        umap_projection(x, cancel=token)
    assert time.monotonic() - start < 1.0 + 5.0  # cancel at 1 s; the child is terminated at once


def test_first_map_of_a_large_matrix_uses_a_row_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large matrix's first map is placed on a sample's axes (seconds, not 20 passes over gigabytes),
    close to the exact map; a small one's first map is the exact map itself."""
    from glitchview.core.scores import projection

    x, _ = _blobs(n=20_000, d=64)
    exact = pca(x, 2)[0]
    small, is_exact = projection.first_map(x)
    assert is_exact and np.array_equal(small, exact)
    monkeypatch.setattr(projection, "FIRST_MAP_EXACT_FLOATS", 10_000)
    monkeypatch.setattr(projection, "FIRST_MAP_ROWS", 2_000)
    preview, is_exact = projection.first_map(x)
    assert not is_exact and not np.array_equal(preview, exact)
    for c in range(2):
        assert abs(np.corrcoef(preview[:, c], exact[:, c])[0, 1]) > 0.99
    np.testing.assert_array_equal(preview, projection.first_map(x)[0])  # seeded


def test_the_analysis_replaces_a_sampled_first_map_by_the_exact_one(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tiny_models import write_hf_folder

    from glitchview.core.model.loading import finite_matrices, load_model
    from glitchview.core.model.sources import resolve
    from glitchview.core.pipeline import scan_model
    from glitchview.core.scores import projection

    tiny = write_hf_folder(tmp_path / "tiny")
    model = load_model(resolve(str(tiny.path)))
    monkeypatch.setattr(projection, "FIRST_MAP_EXACT_FLOATS", 100)
    monkeypatch.setattr(projection, "FIRST_MAP_ROWS", 64)
    shown: list[np.ndarray] = []
    analysis = scan_model(model, "tiny", on_map=shown.append)
    exact = pca(finite_matrices(model)[0], 2)[0]
    assert len(shown) == 1 and not np.array_equal(shown[0], exact)
    np.testing.assert_array_equal(analysis.projections["pca"], exact)
