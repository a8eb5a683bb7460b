"""Benchmark of the core pipeline steps on the demo models (Gemma-3-270M: 262,144 tokens x 640, the
large-vocabulary case; SmolLM2; MiniLM), each figure beside its baseline from the same run:

- k-means: ours against scikit-learn's `MiniBatchKMeans(n_init=3)` (time) and `KMeans(n_init=10)`
  (time and best inertia; `--skip-sklearn` skips only this slow one), with the ratios, and how far our
  inertia lands from the best seen and from `KMeans(n_init=10)` over `--kmeans-seeds` seeds (the local
  minimum found depends on the seed);
- PCA and `unembedding_cosine_pc1`: the randomized subspace iteration against the previous full
  eigen-decomposition of the d x d covariance (time, and how far the results are apart);
- the token table (built afresh, in this process and as the application builds it: in child processes, three
  times) and every indicator.
The UMAP-class map has its own benchmark (bench/bench_map.py).
Run: `python bench/bench_pipeline.py [smollm2 minilm gemma3] [--skip-sklearn]`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine

T = TypeVar("T")
TABLE_RUNS = 3  # fresh builds of the token table as the application makes it (a shared machine varies)


def timed(rows: dict[str, float], label: str, func: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = func()
    rows[label] = time.perf_counter() - start
    print(f"  {label:<44} {rows[label]:9.2f} s", file=sys.stderr, flush=True)
    return result


def eigen_axes(matrix: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """The previous method, kept as the baseline: (centred rows, top axes) from an eigen-decomposition
    of the d x d covariance."""
    centred = matrix - matrix.mean(axis=0, dtype=np.float64).astype(np.float32)
    values, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    return centred, vectors[:, np.argsort(values)[::-1][:n_components]].astype(np.float32)


def eigen_pca(matrix: np.ndarray) -> np.ndarray:
    centred, axes = eigen_axes(matrix, 2)
    return centred @ axes


def eigen_cosine_pc1(matrix: np.ndarray, reference_ids: np.ndarray) -> np.ndarray:
    from glitchview.core.scores.indicators import _cosine_distance_to_reference

    centred, axes = eigen_axes(matrix, 1)
    return _cosine_distance_to_reference(centred - np.outer(centred @ axes[:, 0], axes[:, 0]), reference_ids)


def bench_model(name: str, skip_sklearn: bool, clusters: int, kmeans_seeds: int) -> dict[str, str]:
    from scipy.stats import spearmanr
    from sklearn.cluster import KMeans, MiniBatchKMeans

    from glitchview.core.model.loading import finite_matrices
    from glitchview.core.model.sources import resolve
    from glitchview.core.model.vocab import build_token_table, cached_token_table, table_cache_path
    from glitchview.core.pipeline import open_model
    from glitchview.core.scores.clustering import inertia_of, kmeans
    from glitchview.core.scores.indicators import INDICATORS, ScoringInputs, own_center_distance
    from glitchview.core.scores.projection import pca, principal_axes
    from glitchview.core.scores.reference import choose_reference

    rows: dict[str, float] = {}
    resolve(name)  # assemble demo files before timing
    timed(rows, "load, cold", lambda: open_model(name))
    model = timed(rows, "load, cached", lambda: open_model(name))
    x, unembedding, _ = finite_matrices(model)
    print(f"{name}: {x.shape[0]} tokens x {x.shape[1]}", file=sys.stderr)
    table = timed(rows, "token table", lambda: build_token_table(model.tokenizer, x.shape[0]))
    child_runs = []
    for run in range(TABLE_RUNS):  # as the window and scan build it, afresh each time
        table_cache_path(model.fingerprint, x.shape[0]).unlink(missing_ok=True)
        timed(rows, f"token table, child, run {run + 1}",
              lambda: cached_token_table(model.folder, model.fingerprint, x.shape[0]))
        child_runs.append(rows[f"token table, child, run {run + 1}"])
    ours = timed(rows, "k-means (GlitchView)", lambda: kmeans(x, clusters, seed=0))
    mb = timed(rows, "k-means MiniBatchKMeans(n_init=3)",
               lambda: MiniBatchKMeans(clusters, random_state=0, n_init=3).fit(x))
    inertias = {"GlitchView": inertia_of(x, ours.labels, ours.centers),
                "MiniBatchKMeans(n_init=3)": inertia_of(x, mb.labels_, mb.cluster_centers_)}
    if not skip_sklearn:
        full = timed(rows, "k-means KMeans(n_init=10)", lambda: KMeans(clusters, n_init=10, random_state=0).fit(x))
        inertias["KMeans(n_init=10)"] = inertia_of(x, full.labels_, full.cluster_centers_)
    ref = choose_reference(table, own_center_distance(x, ours.labels, ours.centers))
    tied = unembedding is x  # then the analysis computes the principal axes once, for the PCA map and PC1
    axes = timed(rows, "principal axes", lambda: principal_axes(x, 2)) if tied else None
    inputs = ScoringInputs(x, unembedding, ours.labels, ours.centers, ref.ids, axes=axes)
    scores = {ind: timed(rows, f"indicator {ind}", lambda f=spec.compute: f(inputs)) for ind, spec in INDICATORS.items()}
    old_pc1 = timed(rows, "unembedding_cosine_pc1, full eigen (before)",
                    lambda: eigen_cosine_pc1(unembedding, ref.ids))
    new_map = timed(rows, "PCA 2 components (randomized)", lambda: pca(x, 2, axes=axes)[0])
    old_map = timed(rows, "PCA 2 components, full eigen (before)", lambda: eigen_pca(x))
    new_pc1 = scores["unembedding_cosine_pc1"]
    k = max(1, len(x) // 100)
    top_overlap = len(set(np.argsort(new_pc1)[:k]) & set(np.argsort(old_pc1)[:k])) / k
    map_corr = min(abs(np.corrcoef(new_map[:, c], old_map[:, c])[0, 1]) for c in range(2))
    seeds = [inertias["GlitchView"]] + [inertia_of(x, r.labels, r.centers)
                                        for r in (kmeans(x, clusters, seed=seed) for seed in range(1, kmeans_seeds))]
    best = min([*inertias.values(), *seeds])
    out = {
        "shape": f"{x.shape[0]:,} x {x.shape[1]}",
        "token table": f"{rows['token table']:.2f} s in this process; as the window and scan build it (child "
                       f"processes: start, tokenizer read, build, cache write), median of {TABLE_RUNS} "
                       f"{np.median(child_runs):.2f} s ({min(child_runs):.2f}-{max(child_runs):.2f} s)",
        "k-means ours": f"{rows['k-means (GlitchView)']:.2f} s, inertia {100 * (inertias['GlitchView'] / best - 1):+.3f}%",
        "MiniBatchKMeans(n_init=3)": f"{rows['k-means MiniBatchKMeans(n_init=3)']:.2f} s "
        f"({rows['k-means MiniBatchKMeans(n_init=3)'] / rows['k-means (GlitchView)']:.2f}x ours), "
        f"inertia {100 * (inertias['MiniBatchKMeans(n_init=3)'] / best - 1):+.3f}%",
    }
    if kmeans_seeds > 1:
        gaps = 100 * (np.array(seeds) / best - 1)
        out[f"k-means ours, seeds 0-{kmeans_seeds - 1}"] = (
            f"inertia {gaps.min():+.3f}% to {gaps.max():+.3f}% (median {np.median(gaps):+.3f}%), "
            f"within 0.1% for {int((gaps <= 0.1).sum())} of {kmeans_seeds}")
    if not skip_sklearn:
        to_full = 100 * (np.array(seeds) / inertias["KMeans(n_init=10)"] - 1)
        out[f"k-means ours, seeds 0-{kmeans_seeds - 1}, against KMeans(n_init=10)"] = (
            f"inertia {to_full.min():+.3f}% to {to_full.max():+.3f}%, within 0.1% for {int((to_full <= 0.1).sum())} "
            f"of {kmeans_seeds}")
        out["KMeans(n_init=10)"] = (f"{rows['k-means KMeans(n_init=10)']:.2f} s "
                                    f"({rows['k-means KMeans(n_init=10)'] / rows['k-means (GlitchView)']:.1f}x ours), "
                                    f"inertia {100 * (inertias['KMeans(n_init=10)'] / best - 1):+.3f}%")
    shared = rows.get("principal axes", 0.0)
    note = f" (+ {shared:.2f} s for the principal axes, computed once for it and the PCA map)" if tied else ""
    new_t, old_t = rows["indicator unembedding_cosine_pc1"], rows["unembedding_cosine_pc1, full eigen (before)"]
    out["unembedding_cosine_pc1"] = (f"{new_t:.2f} s{note} vs {old_t:.2f} s before ({old_t / (new_t + shared):.1f}x "
                                     f"counting the axes); max abs diff "
                                     f"{np.abs(new_pc1 - old_pc1).max():.1e}, Spearman {spearmanr(new_pc1, old_pc1)[0]:.6f}, "
                                     f"top-1% overlap {top_overlap:.3f}")
    new_t = rows["PCA 2 components (randomized)"] + shared
    old_t = rows["PCA 2 components, full eigen (before)"]
    out["PCA map"] = (f"{new_t:.2f} s (axes included) vs {old_t:.2f} s before ({old_t / new_t:.1f}x); "
                      f"|corr| of each axis >= {map_corr:.6f}")
    out["indicators"] = ", ".join(f"{ind} {rows[f'indicator {ind}']:.2f}" for ind in INDICATORS)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", default=["smollm2", "minilm", "gemma3"])
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--skip-sklearn", action="store_true", help="skip the slow KMeans(n_init=10) baseline")
    parser.add_argument("--kmeans-seeds", type=int, default=5,
                        help="seeds of our k-means whose inertia is compared (the timed run is seed 0)")
    args = parser.parse_args()
    os.environ["GLITCHVIEW_CACHE_DIR"] = tempfile.mkdtemp(prefix="glitchview-bench-")
    print(machine())
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared with other sessions)")
    results = {name: bench_model(name, args.skip_sklearn, args.clusters, args.kmeans_seeds) for name in args.models}
    print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
    print("| step | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for row in next(iter(results.values())):
        print(f"| {row} | " + " | ".join(r[row] for r in results.values()) + " |")


if __name__ == "__main__":
    main()
