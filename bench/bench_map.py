"""The UMAP-class map of every token: routes side by side against umap-learn's defaults (seeded, on the
PCA-50 reduction: the previous route), each in a fresh process with a fresh numba cache, so that
compilation counts, then the chosen route again with its cache warm. Quality: scikit-learn's
`trustworthiness` (k = 10) on a fixed 5,000-token sample, against the embedding matrix itself.
Run: `python bench/bench_map.py [gemma3] [--skip-baseline] [--routes faiss50,faiss100,...]` (the first route
named is the one run twice)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine  # noqa: E402

PROBE = 5_000


def routes() -> dict:
    from glitchview.core.scores.projection import UmapRoute

    return {"faiss50": UmapRoute(), "faiss60": UmapRoute(epochs=60, probes=16),
            "faiss100": UmapRoute(epochs=100, probes=16),
            "nnd100": UmapRoute(epochs=100, graph="pynndescent"), "nnd60": UmapRoute(epochs=60, graph="pynndescent"),
            "sample32k": UmapRoute(epochs=200, sample=32_768), "sample64k": UmapRoute(epochs=200, sample=65_536)}


def run_route(name: str, x_path: str, seed: int) -> None:
    """Child mode: one route on the saved matrix; prints seconds, trustworthiness and a digest as JSON."""
    from sklearn.manifold import trustworthiness

    x = np.load(x_path)
    start = time.perf_counter()
    if name == "baseline":  # the previous route: umap-learn's defaults on PCA-50
        import umap

        from glitchview.core.scores.projection import pca

        coords = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, low_memory=True).fit_transform(
            pca(x, 50)[0])
    else:
        from glitchview.core.scores.projection import umap_projection

        coords = umap_projection(x, seed=seed, route=routes()[name])
    seconds = time.perf_counter() - start
    probe = np.sort(np.random.default_rng(12345).choice(len(x), PROBE, replace=False))
    trust = trustworthiness(x[probe], coords[probe], n_neighbors=10)
    print(json.dumps({"seconds": seconds, "trust": float(trust), "digest": float(np.abs(coords).sum())}))


def child(name: str, x_path: str, cache: Path, seed: int) -> dict:
    env = {**os.environ, "GLITCHVIEW_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(cache / "numba"),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, "--route", name, x_path, str(seed)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"route {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", default="gemma3")
    parser.add_argument("--routes", default="faiss50,faiss100,nnd100")
    parser.add_argument("--skip-baseline", action="store_true", help="skip umap-learn's defaults (minutes)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from glitchview.core.model.loading import finite_matrices
    from glitchview.core.pipeline import open_model

    print(machine())
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared with other sessions)")
    with tempfile.TemporaryDirectory(prefix="bench-map-") as tmp:
        x = finite_matrices(open_model(args.model))[0]
        x_path = str(Path(tmp) / "x.npy")
        np.save(x_path, x)
        print(f"{args.model}: {x.shape[0]:,} x {x.shape[1]}; trustworthiness k=10 on a fixed {PROBE:,}-token sample")
        names = ([] if args.skip_baseline else ["baseline"]) + args.routes.split(",")
        results = {}
        for name in names:
            results[name] = child(name, x_path, Path(tmp) / f"cache-{name}", args.seed)
            print(f"  {name:<10} fresh numba cache: {results[name]['seconds']:7.1f} s, "
                  f"trustworthiness {results[name]['trust']:.4f}", flush=True)
        chosen = args.routes.split(",")[0]
        warm = child(chosen, x_path, Path(tmp) / f"cache-{chosen}", args.seed)
        print(f"  {chosen:<10} warm numba cache:  {warm['seconds']:7.1f} s, trustworthiness {warm['trust']:.4f}, "
              f"same map as the first run: {warm['digest'] == results[chosen]['digest']}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if "baseline" in results:
        base = results["baseline"]["seconds"]
        for name in names[1:]:
            print(f"  {name}: {base / results[name]['seconds']:.1f}x faster than umap-learn's defaults")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--route"]:
        run_route(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
