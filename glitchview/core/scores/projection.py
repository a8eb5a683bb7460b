"""2-D maps of the embedding matrix: PCA at once, UMAP on request.

PCA is an eigen-decomposition of the d x d covariance (one pass over the matrix, seconds on
Gemma-3). UMAP runs on a PCA-50 reduction in a child process (`core.child`), so that a cancel
stops it at once and a crash of numba cannot take the application down; its numba compile cache
lives in GlitchView's cache folder so only the first run ever compiles."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..child import run_in_child
from ..errors import GlitchViewError
from ..model.sources import cache_root
from ..progress import CancelToken, ProgressFn, no_progress

UMAP_INPUT_DIM = 50


def principal_axes(matrix: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centred rows, top principal axes as columns, all covariance eigenvalues sorted descending),
    from an eigen-decomposition of the d x d covariance."""
    centred = matrix - matrix.mean(axis=0, dtype=np.float64).astype(np.float32)
    cov = (centred.T @ centred).astype(np.float64) / max(matrix.shape[0] - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    return centred, vectors[:, order[:n_components]].astype(np.float32), values[order]


def pca(matrix: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto the top principal components. Returns (coords, explained variance ratio)."""
    centred, top, values = principal_axes(matrix, n_components)
    # fix each component's sign so that the projection is reproducible across runs
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
    top *= np.where(signs == 0, 1.0, signs).astype(np.float32)
    coords = centred @ top
    total = float(values.sum())
    ratio = values[:n_components] / total if total > 0 else np.zeros(min(n_components, len(values)))
    return np.ascontiguousarray(coords, dtype=np.float32), ratio


def _umap_child(in_path: str, out_path: str, seed: int, n_neighbors: int, min_dist: float,
                cache_dir: str, progress: ProgressFn) -> None:
    os.environ["NUMBA_CACHE_DIR"] = cache_dir
    progress(0.1, "loading UMAP (numba; compiled once, then cached)")
    warnings.filterwarnings("ignore", message="n_jobs value")  # seeded UMAP is single-threaded by design
    try:
        import umap
    except ImportError as exc:
        raise GlitchViewError(f"UMAP is not available in this installation ({exc}); PCA maps still work. "
                              f"Install it with: pip install umap-learn") from exc

    data = np.load(in_path)
    progress(0.3, f"neighbour graph and layout of {data.shape[0]} points")
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed,
                        low_memory=True, tqdm_kwds={"disable": True})
    np.save(out_path, reducer.fit_transform(data).astype(np.float32))


def umap_projection(matrix: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
                    progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> np.ndarray:
    """UMAP of the rows (on their PCA-50 reduction), cancellable at any moment."""
    progress(0.02, f"PCA-{UMAP_INPUT_DIM} reduction for UMAP")
    reduced, _ = pca(matrix, min(UMAP_INPUT_DIM, matrix.shape[1]))
    numba_cache = cache_root() / "numba"
    numba_cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="glitchview-umap-") as tmp:
        in_path, out_path = str(Path(tmp) / "in.npy"), str(Path(tmp) / "out.npy")
        np.save(in_path, reduced)
        run_in_child(_umap_child, (in_path, out_path, seed, n_neighbors, min_dist, str(numba_cache)), "UMAP",
                     progress, cancel)
        coords = np.load(out_path)
    progress(1.0, "UMAP done")
    return coords
