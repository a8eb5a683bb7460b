"""Benchmark of the core pipeline on Gemma-3-270M (262,144 tokens x 640), the large-vocabulary case.

Prints one table: cold load (GGUF conversion into a fresh cache), cached load, token table, each
indicator, k-means (ours against scikit-learn `KMeans(n_init=10)` and `MiniBatchKMeans` on the same
matrix in the same run, with inertias and ratios), PCA, UMAP (first run in a fresh numba cache and
a second run that reuses it). Run with `make bench` (about 15 minutes on 2 cores), or pass another
model name: `python bench/bench_pipeline.py smollm2 --skip-sklearn`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable, TypeVar

T = TypeVar("T")
ROWS: list[tuple[str, float, str]] = []


def timed(label: str, func: Callable[[], T], note: str = "") -> T:
    start = time.perf_counter()
    result = func()
    ROWS.append((label, time.perf_counter() - start, note))
    print(f"  {label:<38} {ROWS[-1][1]:9.2f} s  {note}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", default="gemma3")
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--skip-sklearn", action="store_true", help="skip the slow KMeans(n_init=10) baseline")
    parser.add_argument("--skip-umap", action="store_true")
    args = parser.parse_args()
    os.environ["GLITCHVIEW_CACHE_DIR"] = tempfile.mkdtemp(prefix="glitchview-bench-")

    from sklearn.cluster import KMeans, MiniBatchKMeans

    from glitchview.core.model.sources import resolve
    from glitchview.core.model.vocab import build_token_table
    from glitchview.core.pipeline import open_model
    from glitchview.core.scores.clustering import inertia_of, kmeans
    from glitchview.core.scores.indicators import INDICATORS, ScoringInputs, own_center_distance
    from glitchview.core.scores.projection import pca, umap_projection
    from glitchview.core.scores.reference import choose_reference

    resolve(args.model)  # assemble demo files before timing
    timed("load, cold (GGUF conversion)", lambda: open_model(args.model))
    model = timed("load, cached", lambda: open_model(args.model))
    x = model.input_embeddings
    print(f"{args.model}: {x.shape[0]} tokens x {x.shape[1]}", file=sys.stderr)
    table = timed("token table", lambda: build_token_table(model.tokenizer, x.shape[0]))
    ours = timed(f"k-means k={args.clusters} (GlitchView)", lambda: kmeans(x, args.clusters))
    ref = choose_reference(table, own_center_distance(x, ours.labels, ours.centers))
    inputs = ScoringInputs(x, model.unembedding, ours.labels, ours.centers, ref.ids)
    for name, ind in INDICATORS.items():
        timed(f"indicator {name}", lambda compute=ind.compute: compute(inputs))
    mb = timed("k-means MiniBatchKMeans (sklearn)",
               lambda: MiniBatchKMeans(args.clusters, random_state=0, n_init=3).fit(x))
    inertias = {"GlitchView": ours.inertia, "MiniBatchKMeans": inertia_of(x, mb.labels_, mb.cluster_centers_)}
    if not args.skip_sklearn:
        full = timed("k-means KMeans(n_init=10) (sklearn)",
                     lambda: KMeans(args.clusters, n_init=10, random_state=0).fit(x))
        inertias["KMeans(n_init=10)"] = inertia_of(x, full.labels_, full.cluster_centers_)
    timed("PCA (2 components)", lambda: pca(x, 2))
    if not args.skip_umap:
        timed("UMAP, fresh numba cache", lambda: umap_projection(x))
        timed("UMAP, cached numba", lambda: umap_projection(x))

    t = dict((label, secs) for label, secs, _ in ROWS)
    print(f"\n## {args.model}: {x.shape[0]} x {x.shape[1]}, {os.cpu_count()} cores\n")
    print("| step | seconds |\n|---|---:|")
    for label, secs, _ in ROWS:
        print(f"| {label} | {secs:.2f} |")
    print("\n| ratio | value |\n|---|---:|")
    print(f"| cold load / cached load | {t['load, cold (GGUF conversion)'] / t['load, cached']:.1f}x |")
    ours_t = t[f"k-means k={args.clusters} (GlitchView)"]
    if "KMeans(n_init=10)" in inertias:
        print(f"| KMeans(n_init=10) time / ours | {t['k-means KMeans(n_init=10) (sklearn)'] / ours_t:.1f}x |")
    print(f"| MiniBatchKMeans time / ours | {t['k-means MiniBatchKMeans (sklearn)'] / ours_t:.2f}x |")
    if not args.skip_umap:
        print(f"| UMAP fresh / cached numba | {t['UMAP, fresh numba cache'] / t['UMAP, cached numba']:.2f}x |")
    best = min(inertias.values())
    print("\n| k-means | inertia | vs best |\n|---|---:|---:|")
    for name, value in inertias.items():
        print(f"| {name} | {value:.6g} | {100 * (value / best - 1):+.3f}% |")


if __name__ == "__main__":
    main()
