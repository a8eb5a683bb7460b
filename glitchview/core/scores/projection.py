"""2-D maps of the embedding matrix: PCA at once, UMAP on request.

PCA is a randomized subspace iteration (a few thin matrix products over the matrix, well under a
second on Gemma-3 and seconds at 128k x 4,096; a large matrix's first map uses a row sample's axes).
UMAP runs on a PCA-50 reduction in a child process (`core.child`), so that a cancel stops it at once
and a crash of numba cannot take the application down; its numba compile cache lives in GlitchView's
cache folder so only the first run ever compiles."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..child import run_in_child
from ..errors import GlitchViewError
from ..model.sources import cache_root
from ..progress import CancelToken, ProgressFn, no_progress

UMAP_INPUT_DIM = 50
OVERSAMPLING = 6  # extra random directions: the top components converge in a few passes
CONVERGED = 1e-9  # 1 - |cos| between successive estimates of every top axis
AXES_SAMPLE_ROWS = 32_768  # rows on which a tall matrix's subspace settles before the pass over all rows
FIRST_MAP_ROWS = 8_192  # rows whose axes place a large matrix's first map (see `first_map`)
FIRST_MAP_PASSES = 10  # at most this many passes settle those axes: a preview, replaced by the exact map
FIRST_MAP_EXACT_FLOATS = 1 << 26  # up to this size (256 MB of float32) the first map is the exact PCA map


def principal_axes(matrix: np.ndarray, n_components: int, seed: int = 0, max_iterations: int = 20
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(row mean, top principal axes as columns, their variances, total variance) by seeded
    randomized subspace iteration on the covariance with a Rayleigh-Ritz step (Halko, Martinsson &
    Tropp 2011), until the top axes stop turning: each pass is two thin n x d x (k + 6) products on
    the implicitly centred matrix, instead of the O(n d^2) covariance, and no centred copy of the
    matrix is made. A small gap between eigenvalues takes more passes than a large one (Gemma-3: 9,
    MiniLM: 19); without a gap (a random matrix) the axes never settle and `max_iterations` ends it.
    A tall matrix (over 2 x `AXES_SAMPLE_ROWS` rows) settles its subspace on a seeded row sample first,
    then a single pass over every row gives the axes (`_power_step_axes`; Gemma-3: 0.25 s instead of
    1.1 s, 1 - |cos| under 1e-6 for both axes against the fully iterated ones, variances within 3e-4)."""
    n, d = matrix.shape
    mean = matrix.mean(axis=0)  # numpy's pairwise float32 sum: a float64 copy costs four times as long
    width = min(n_components + OVERSAMPLING, d)
    if 4 * 6 * width >= d:  # many components of a narrow matrix: one pass building the covariance costs less
        values, axes = np.linalg.eigh(_covariance(matrix, mean))
        order = np.argsort(values)[::-1][:n_components]
        values, axes = values[order], axes[:, order]
    else:
        basis = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, width)))[0].astype(np.float32)
        if n > 2 * AXES_SAMPLE_ROWS:
            rows = np.sort(np.random.default_rng(seed).choice(n, AXES_SAMPLE_ROWS, replace=False))
            basis = _subspace_iteration(matrix[rows], mean, basis, n_components, max_iterations)[2]
            values, axes = _power_step_axes(matrix, mean, basis, n_components)
        else:
            values, axes, _ = _subspace_iteration(matrix, mean, basis, n_components, max_iterations)
    dof = max(n - 1, 1)
    total = (_sum_of_squares(matrix) - n * float(mean.astype(np.float64) @ mean)) / dof
    return mean, axes.astype(np.float32), values / dof, total


def _subspace_iteration(matrix: np.ndarray, mean: np.ndarray, basis: np.ndarray, n_components: int,
                        max_iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Passes from `basis` until the top axes stop turning: (their eigenvalues of the unnormalised
    covariance, the axes, the orthonormal basis of the last product, to start further passes from)."""
    previous = None
    for _ in range(max_iterations):
        product = _covariance_times(matrix, mean, basis)
        values, vectors = np.linalg.eigh(basis.T.astype(np.float64) @ product.astype(np.float64))
        order = np.argsort(values)[::-1][:n_components]
        axes = basis.astype(np.float64) @ vectors[:, order]
        basis = np.linalg.qr(product)[0]
        if previous is not None and np.abs(np.einsum("ij,ij->j", previous, axes)).min() > 1.0 - CONVERGED:
            break
        previous = axes
    return values[order], axes, basis


def _power_step_axes(matrix: np.ndarray, mean: np.ndarray, basis: np.ndarray, n_components: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Axes and eigenvalues from one pass over every row, starting from a settled basis B: P = C B, then
    the top eigenvectors v of P^T P = B^T C^2 B (Rayleigh-Ritz for C^2 on span(B)) give the axes P v,
    one power step beyond B, and the eigenvalues sqrt(mu). Measured on Gemma-3 from a 32k-row sample's
    basis: 1 - |cos| of 4e-8 and 5e-7, where a plain Rayleigh-Ritz on span(B) is off by 1e-4."""
    product = _covariance_times(matrix, mean, basis).astype(np.float64)
    mu, vectors = np.linalg.eigh(product.T @ product)
    order = np.argsort(mu)[::-1][:n_components]
    axes = product @ vectors[:, order]
    return np.sqrt(np.maximum(mu[order], 0.0)), axes / np.linalg.norm(axes, axis=0)


def _covariance_times(matrix: np.ndarray, mean: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(X - 1 mean)^T (X - 1 mean) @ vectors, without a centred copy of X."""
    left = matrix @ vectors - mean @ vectors
    return matrix.T @ left - np.outer(mean, left.sum(axis=0))


def _sum_of_squares(matrix: np.ndarray, chunk: int = 8_192) -> float:
    """Sum of every squared entry: float32 dot products of row chunks, added in float64."""
    return sum(float(np.dot(block.ravel(), block.ravel())) for block in
               (matrix[start:start + chunk] for start in range(0, matrix.shape[0], chunk)))


def _covariance(matrix: np.ndarray, mean: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """(X - 1 mean)^T (X - 1 mean) in float64, from centred row chunks (no centred copy of the matrix)."""
    total = np.zeros((matrix.shape[1], matrix.shape[1]), dtype=np.float64)
    for start in range(0, matrix.shape[0], chunk):
        block = matrix[start:start + chunk] - mean
        total += block.T @ block
    return total


Axes = tuple[np.ndarray, np.ndarray, np.ndarray, float]  # what `principal_axes` returns


def pca(matrix: np.ndarray, n_components: int = 2, seed: int = 0, fit_rows: np.ndarray | None = None,
        max_iterations: int = 20, axes: Axes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto the top principal components (of the rows `fit_rows` only, when given; `axes`
    when already computed). Returns (coords, explained variance ratio)."""
    fitted = matrix if fit_rows is None else matrix[fit_rows]
    mean, top, variances, total = axes or principal_axes(fitted, n_components, seed, max_iterations)
    top = top[:, :n_components].copy()
    variances = variances[:n_components]
    # fix each component's sign so that the projection is reproducible across runs
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
    top *= np.where(signs == 0, 1.0, signs).astype(np.float32)
    coords = matrix @ top - mean @ top
    ratio = variances / total if total > 0 else np.zeros(len(variances))
    return np.ascontiguousarray(coords, dtype=np.float32), ratio


def first_map(matrix: np.ndarray, seed: int = 0) -> tuple[np.ndarray, bool]:
    """(the PCA map shown while the analysis runs, whether it is the exact PCA map). A large matrix
    (Llama-3-8B: 128k x 4,096) takes up to 20 passes over its 2 GB until its axes settle, seconds the
    user waits for nothing: its first map takes the axes of a seeded sample of `FIRST_MAP_ROWS` rows
    (at most `FIRST_MAP_PASSES` passes) and projects every row on them; the analysis then computes
    the exact map and replaces it."""
    n, d = matrix.shape
    if n * d <= FIRST_MAP_EXACT_FLOATS or n <= FIRST_MAP_ROWS:
        return pca(matrix, 2, seed)[0], True
    rows = np.sort(np.random.default_rng(seed).choice(n, FIRST_MAP_ROWS, replace=False))
    return pca(matrix, 2, seed, fit_rows=rows, max_iterations=FIRST_MAP_PASSES)[0], False


@dataclass(frozen=True)
class UmapRoute:
    """How the UMAP-class map is made (bench/bench_map.py measures routes against umap-learn's defaults).
    The kNN graph comes from faiss (an inverted-file index: `lists` k-means cells, `probes` searched per
    point; every core) or from pynndescent (every core), then umap-learn lays out that precomputed graph,
    seeded (single-threaded, so reproducible), in `epochs` epochs from a PCA start. With `sample`, only
    that many rows (seeded choice) are laid out; every other row is placed at the distance-weighted mean
    of its nearest sampled rows."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    epochs: int = 50  # Gemma-3: trustworthiness 0.826 at 50, 0.821 at 45, 0.825 at 60, 0.830 at 100 (bench_map)
    init: str = "pca"
    sample: int = 0
    graph: str = "faiss"  # or "pynndescent"
    lists: int = 1024
    probes: int = 12  # recall@15 0.87 (16: 0.90, 6.2 s against 7.4 s on Gemma-3), the same trustworthiness


Neighbours = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # points -> (ids, distances), k per point


def _neighbour_graph(points: np.ndarray, route: UmapRoute, seed: int) -> tuple[np.ndarray, np.ndarray, Neighbours]:
    """(ids, distances) of every point's `route.n_neighbors` nearest points (itself first), and a
    function giving the nearest of these points to other points."""
    k = min(route.n_neighbors, len(points))
    if route.graph == "faiss":
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)
        data = np.ascontiguousarray(points, dtype=np.float32)
        lists = max(1, min(route.lists, len(data) // 39))  # faiss's k-means wants 39 points per cell
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(data.shape[1]), data.shape[1], lists)
        index.cp.seed = seed
        index.train(data)
        index.add(data)
        index.nprobe = min(route.probes, lists)

        def search(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            squared, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return ids, np.sqrt(np.maximum(squared, 0.0))  # faiss gives squared L2; -1 where a cell ran short

        return *search(data), search
    import pynndescent

    nnd = pynndescent.NNDescent(points, n_neighbors=k, random_state=seed, n_jobs=os.cpu_count() or 1, low_memory=True)
    return *nnd.neighbor_graph, lambda queries: nnd.query(queries, k=k)


def _umap_child(in_path: str, out_path: str, seed: int, route: UmapRoute, cache_dir: str,
                progress: ProgressFn) -> None:
    os.environ["NUMBA_CACHE_DIR"] = cache_dir
    progress(0.05, "loading UMAP (numba; compiled once, then cached)")
    warnings.filterwarnings("ignore", message="n_jobs value")  # seeded UMAP is single-threaded by design
    try:
        import umap
    except ImportError as exc:
        raise GlitchViewError(f"UMAP is not available in this installation ({exc}); PCA maps still work. "
                              f"Install it with: pip install umap-learn") from exc

    data = np.load(in_path)
    n = data.shape[0]
    laid = (np.sort(np.random.default_rng(seed).choice(n, route.sample, replace=False))
            if 0 < route.sample < n else np.arange(n))
    progress(0.2, f"neighbour graph of {len(laid)} points ({route.graph}, all cores)")
    ids, dists, neighbours = _neighbour_graph(data[laid], route, seed)
    progress(0.5, f"layout of {len(laid)} points, {route.epochs} epochs")
    reducer = umap.UMAP(n_components=2, n_neighbors=ids.shape[1], min_dist=route.min_dist, random_state=seed,
                        n_epochs=route.epochs, init=route.init, precomputed_knn=(ids, dists, None),
                        low_memory=True, tqdm_kwds={"disable": True})
    coords = np.empty((n, 2), dtype=np.float32)
    coords[laid] = reducer.fit_transform(data[laid])
    rest = np.setdiff1d(np.arange(n), laid)
    if rest.size:
        progress(0.9, f"placing the other {rest.size} points by their nearest laid-out neighbours")
        near, far = neighbours(data[rest])
        weights = np.where(near >= 0, 1.0 / np.maximum(far, 1e-6), 0.0)
        total = np.maximum(weights.sum(1, keepdims=True), 1e-12)
        coords[rest] = (coords[laid][near] * weights[:, :, None]).sum(1) / total
    np.save(out_path, coords)


def umap_projection(matrix: np.ndarray, seed: int = 0, route: UmapRoute = UmapRoute(),
                    progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> np.ndarray:
    """UMAP of the rows (on their PCA-50 reduction), cancellable at any moment."""
    progress(0.02, f"PCA-{UMAP_INPUT_DIM} reduction for UMAP")
    reduced, _ = pca(matrix, min(UMAP_INPUT_DIM, matrix.shape[1]))
    numba_cache = cache_root() / "numba"
    numba_cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="glitchview-umap-") as tmp:
        in_path, out_path = str(Path(tmp) / "in.npy"), str(Path(tmp) / "out.npy")
        np.save(in_path, reduced)
        run_in_child(_umap_child, (in_path, out_path, seed, route, str(numba_cache)), "UMAP", progress, cancel)
        coords = np.load(out_path)
    progress(1.0, "UMAP done")
    return coords
