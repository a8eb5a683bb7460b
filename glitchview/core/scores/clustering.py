"""k-means over the whole embedding matrix, seeded: near the inertia of scikit-learn's `KMeans(n_init=10)`
in a fraction of its time (bench/bench_pipeline.py measures both, and `MiniBatchKMeans`).

How: several k-means++ seedings are each refined by a few Lloyd iterations on a small random
sample (cheap); the best one is run to convergence on the sample, then seeds full-batch Lloyd
iterations on every row, each one BLAS matrix product and one scatter-add (torch, all cores),
stopped when the relative inertia gain falls below `tol`. Centres that outliers captured (a cluster of
a few rows) are then moved where the error is largest (`_repair_small_clusters`). The rows are never
copied: distances and centre sums use the column mean as an implicit shift, so float32 keeps its
precision. Seeded and reproducible; cancellable between iterations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import CancelToken, ProgressFn, no_progress, sub_progress

SAMPLE_SIZE = 8_192
SEEDING_ITERATIONS = (15, 100)  # Lloyd iterations on the sample: for every seeding, then for the best one
ONE_THREAD_BELOW = 1 << 24  # matrix elements under which the full iterations run on one thread too
SMALL_CLUSTER = 0.02  # a cluster under this share of the mean cluster size: its centre may be an outlier's
REPAIR_TRIES = 5
TRY_ITERATIONS = 8  # Lloyd iterations a try gets to beat the current inertia before it is dropped


@dataclass(frozen=True)
class KMeansResult:
    labels: np.ndarray  # int32, one per row
    centers: np.ndarray  # float32, k x d
    inertia: float  # sum of squared distances to the own centre (float64 sum of the norm-trick distances)
    iterations: int


@dataclass(frozen=True)
class _Rows:
    """Rows in their own coordinates plus the shift (column mean) that centres them; centres live in
    shifted coordinates, so the norm trick works on centred quantities without a centred copy."""

    x: torch.Tensor
    shift: torch.Tensor
    sq: torch.Tensor  # squared norm of every shifted row

    def subset(self, ids: torch.Tensor) -> _Rows:
        return _Rows(self.x[ids], self.shift, self.sq[ids])

    def sq_distances(self, centers: torch.Tensor) -> torch.Tensor:
        cross = self.x @ centers.T - self.shift @ centers.T
        return (self.sq[:, None] - 2.0 * cross + (centers * centers).sum(1)[None, :]).clamp_min_(0.0)


def _shifted_sq_norms(x: torch.Tensor, shift: torch.Tensor, chunk: int = 65_536) -> torch.Tensor:
    return torch.cat([((x[i:i + chunk] - shift) ** 2).sum(1) for i in range(0, x.shape[0], chunk)])


@contextmanager
def _one_thread() -> Iterator[None]:
    """Small matrix work runs on one thread: on a busy machine, synchronising threads for products of
    a few milliseconds costs ten times the work (measured on the sample seeding)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _plus_plus(rows: _Rows, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (2 + log k candidates per step, as scikit-learn does)."""
    n = rows.x.shape[0]
    trials = 2 + int(np.log(k))
    centers = torch.empty((k, rows.x.shape[1]), dtype=rows.x.dtype)
    centers[0] = rows.x[torch.randint(n, (1,), generator=gen)] - rows.shift
    closest = rows.sq_distances(centers[:1])[:, 0]
    for c in range(1, k):
        probs = closest / closest.sum() if closest.sum() > 0 else torch.full_like(closest, 1.0 / n)
        candidates = torch.multinomial(probs.double(), trials, replacement=True, generator=gen)
        cand_d = torch.minimum(closest[:, None], rows.sq_distances(rows.x[candidates] - rows.shift))
        best = int(torch.argmin(cand_d.sum(0)))
        centers[c] = rows.x[candidates[best]] - rows.shift
        closest = cand_d[:, best]
    return centers


def _lloyd(rows: _Rows, centers: torch.Tensor, max_iter: int, tol: float, progress: ProgressFn,
           cancel: CancelToken) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """Lloyd iterations until the relative inertia gain falls below `tol`; returns the centres, the
    labels of the rows to them and the inertia of the last assignment."""
    k = centers.shape[0]
    previous = float("inf")
    for it in range(1, max_iter + 1):
        cancel.check()
        best, labels = rows.sq_distances(centers).min(1)
        inertia = float(best.double().sum())
        if previous < float("inf") and previous - inertia <= tol * previous:  # converged: these centres and labels belong together
            return centers, labels, inertia, it
        previous = inertia
        sums = torch.zeros_like(centers).index_add_(0, labels, rows.x)
        counts = torch.bincount(labels, minlength=k).to(rows.x.dtype)
        empty = counts == 0
        if empty.any():  # re-seed an empty cluster with the rows farthest from their centre
            far = torch.topk(best, int(empty.sum())).indices
            sums[empty], counts[empty] = rows.x[far], 1.0
        centers = sums / counts[:, None] - rows.shift
        progress(it / max_iter, f"k-means iteration {it}, inertia {inertia:.6g}")
    best, labels = rows.sq_distances(centers).min(1)
    return centers, labels, float(best.double().sum()), max_iter


def _repair_small_clusters(rows: _Rows, centers: torch.Tensor, labels: torch.Tensor, inertia: float,
                           gen: torch.Generator, max_iter: int, tol: float, cancel: CancelToken
                           ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """k-means++ and the empty-cluster rule both favour far rows, so on a vocabulary with scattered
    outliers some centres end up holding a handful of rows (MiniLM: 1-6 rows each, 0.2-0.9% more inertia
    than solutions without them). Each such centre moves onto a random row of the cluster with the
    largest squared error; a try that beats the current inertia within TRY_ITERATIONS Lloyd iterations
    is kept and converged, so a far, tight group of rows (untrained tokens) keeps its own centre.
    Returns the best centres, labels and inertia."""
    k = centers.shape[0]
    for _ in range(REPAIR_TRIES):
        sizes = torch.bincount(labels, minlength=k)
        small = torch.nonzero(sizes < SMALL_CLUSTER * len(labels) / k).squeeze(1)
        if not len(small):
            break
        cancel.check()
        errors = torch.zeros(k, dtype=rows.x.dtype).index_add_(0, labels, rows.sq_distances(centers).min(1)[0])
        errors[small] = -1.0
        trial = centers.clone()
        largest = torch.topk(errors, min(len(small), k - len(small))).indices  # never another small cluster
        for moved, target in zip(small.tolist(), largest.tolist()):
            members = torch.nonzero(labels == target).squeeze(1)
            trial[moved] = rows.x[members[torch.randint(len(members), (1,), generator=gen)]] - rows.shift
        trial, _, trial_inertia, _ = _lloyd(rows, trial, TRY_ITERATIONS, tol, no_progress, cancel)
        if trial_inertia < inertia:  # Lloyd only lowers the inertia: this try is taken, and converged
            centers, labels, inertia, _ = _lloyd(rows, trial, max_iter, tol, no_progress, cancel)
    return centers, labels, inertia


def inertia_of(matrix: np.ndarray, labels: np.ndarray, centers: np.ndarray, chunk: int = 65_536) -> float:
    """Exact inertia (sum of squared distances to the assigned centre), accumulated in float64."""
    total = 0.0
    centers = centers.astype(np.float32)
    for start in range(0, matrix.shape[0], chunk):
        diff = matrix[start:start + chunk] - centers[labels[start:start + chunk]]
        total += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
    return total


def kmeans(matrix: np.ndarray, k: int = 20, seed: int = 0, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-5, progress: ProgressFn = no_progress, cancel: CancelToken | None = None
           ) -> KMeansResult:
    """Cluster the rows of `matrix` into `k` clusters (see the module docstring for the method)."""
    cancel = cancel or CancelToken()
    n = matrix.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"the number of clusters must be between 1 and {n}, not {k}")
    x = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
    shift = torch.from_numpy(matrix.mean(axis=0, dtype=np.float64).astype(np.float32))
    rows = _Rows(x, shift, _shifted_sq_norms(x, shift))
    gen = torch.Generator().manual_seed(seed)
    sample = rows.subset(torch.randperm(n, generator=gen)[:SAMPLE_SIZE]) if n > SAMPLE_SIZE else rows
    with _one_thread():
        seeds = []
        for run in range(n_init):
            cancel.check()
            centers, _, inertia, _ = _lloyd(sample, _plus_plus(sample, k, gen), SEEDING_ITERATIONS[0], 1e-4,
                                            no_progress, cancel)
            seeds.append((inertia, run, centers))
            progress(0.2 * (run + 1) / n_init, f"k-means seeding {run + 1}/{n_init} on a {len(sample.x)}-row sample")
        best_centers = min(seeds, key=lambda seed_run: seed_run[:2])[2]
        best_centers = _lloyd(sample, best_centers, SEEDING_ITERATIONS[1], 1e-5, no_progress, cancel)[0]
    with _one_thread() if x.numel() < ONE_THREAD_BELOW else nullcontext():
        centers, labels, inertia, iterations = _lloyd(rows, best_centers, max_iter, tol,
                                                      sub_progress(progress, 0.2, 0.9), cancel)
        progress(0.9, "k-means: moving centres that outliers captured")
        centers, labels, inertia = _repair_small_clusters(rows, centers, labels, inertia, gen, max_iter, tol,
                                                             cancel)
    centers_np = (centers + shift).numpy().astype(np.float32)
    labels_np = labels.numpy().astype(np.int32)
    result = KMeansResult(labels_np, centers_np, inertia, iterations)
    progress(1.0, f"k-means done: k={k}, {iterations} iterations, inertia {result.inertia:.6g}")
    return result
