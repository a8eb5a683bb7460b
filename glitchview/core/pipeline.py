"""The scan pipeline: model -> token table -> clusters -> indicators -> projections -> Analysis.

Each step reports progress as `progress(fraction_of_whole_job, "Step: detail")` (the text before
the first colon names the step, so a front end can draw one bar per step), checks for
cancellation between chunks of work, and records its wall time in `Analysis.timings`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, TypeVar

import numpy as np

from .analysis import DEFAULT_INDICATOR, Analysis, ModelInfo
from .errors import GlitchViewError
from .model.loading import LoadedModel, finite_matrices, load_model, rank_broken_first
from .model.sources import fingerprint, resolve
from .model.vocab import TokenTable, cached_token_table
from .progress import CancelToken, ProgressFn, no_progress, sub_progress
from .scores.indicators import INDICATORS, ScoringInputs, compute_all, own_center_distance
from .scores.projection import Axes, first_map, pca, principal_axes, umap_projection
from .scores.reference import ReferenceSet, choose_reference

PROJECTIONS = ("pca", "umap")
T = TypeVar("T")


@dataclass
class ScanSettings:
    clusters: int = 20
    seed: int = 0
    indicator: str = DEFAULT_INDICATOR
    projections: tuple[str, ...] = ("pca",)
    reference_ids: list[int] | None = None
    kmeans_inits: int = 10

    def __post_init__(self) -> None:
        if self.indicator not in INDICATORS:
            raise ValueError(f"unknown indicator '{self.indicator}'; choose one of {', '.join(INDICATORS)}")
        unknown = set(self.projections) - set(PROJECTIONS)
        if unknown:
            raise ValueError(f"unknown projection {sorted(unknown)}; choose from {', '.join(PROJECTIONS)}")
        if self.clusters < 1:
            raise ValueError("the number of clusters must be at least 1")


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, func: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = func()
        self.timings[name] = round(time.perf_counter() - start, 3)
        return result


def _step(progress: ProgressFn, start: float, end: float, title: str) -> ProgressFn:
    inner = sub_progress(progress, start, end)
    return lambda fraction, message: inner(fraction, f"{title}: {message}")


def open_model(name: str, progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> LoadedModel:
    """Resolve a model name and load it (tokenizer and embedding matrices)."""
    return load_model(resolve(name), _step(progress, 0.0, 1.0, "Load model"), cancel)


def reopen_model(info: ModelInfo, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> LoadedModel:
    """Load the model an analysis was made for, refusing one that has changed since."""
    model = open_model(info.name, progress, cancel)
    if model.fingerprint != info.fingerprint:
        raise GlitchViewError(f"the model at '{info.name}' has changed since this analysis was made "
                              f"(fingerprint {model.fingerprint}, the analysis has {info.fingerprint}); "
                              f"open the model again to analyse it afresh")
    return model


def model_changed(analysis: Analysis) -> str:
    """A message when the model an analysis was made for now has another fingerprint; "" when it
    is the same, or cannot be found (then the analysis is shown as it was saved)."""
    try:
        source = resolve(analysis.model.name)
    except GlitchViewError:
        return ""
    current = fingerprint(source)
    if current == analysis.model.fingerprint:
        return ""
    return (f"This analysis was made for a different version of '{analysis.model.name}' (fingerprint "
            f"{analysis.model.fingerprint}; the model there now has {current}). Its scores may not match "
            f"the model any more: re-run the analysis on the current model?")


def project(matrix: np.ndarray, method: str, seed: int = 0, progress: ProgressFn = no_progress,
            cancel: CancelToken | None = None, axes: Axes | None = None) -> np.ndarray:
    """A 2-D projection of the rows by `method` ('pca' or 'umap'; PCA on `axes` when already computed)."""
    if method == "pca":
        progress(0.0, "PCA of the embedding matrix")
        coords = pca(matrix, 2, seed, axes=axes)[0]
        progress(1.0, "PCA done")
        return coords
    if method == "umap":
        return umap_projection(matrix, seed=seed, progress=progress, cancel=cancel)
    raise ValueError(f"unknown projection '{method}'")


def analyse(model: LoadedModel, name: str, settings: ScanSettings, progress: ProgressFn = no_progress,
            cancel: CancelToken | None = None, table: TokenTable | None = None,
            projected: dict[str, np.ndarray] | None = None) -> Analysis:
    """Run every analysis step on a loaded model (reusing its token `table` and the `projected`
    maps when given)."""
    cancel = cancel or CancelToken()
    timer = _Timer()
    n, dim = model.input_embeddings.shape
    progress(0.0, "Token table: decoding and re-encoding every token")
    if table is None or len(table) != n:
        table = timer.run("token_table", lambda: cached_token_table(
            model.folder, model.fingerprint, n, _step(progress, 0.0, 0.1, "Token table"), cancel))
    progress(0.1, f"Token table: {n} tokens")
    matrix, unembedding, broken = finite_matrices(model)
    table.flags["nonfinite"] = broken
    notes = list(model.notes)
    if table.tokenizer_size > n:
        notes.append(f"the tokenizer has {table.tokenizer_size} tokens but the embedding matrix only {n} rows: "
                     f"ids {n}..{table.tokenizer_size - 1} have no embedding and crash the model")
    cancel.check()
    from .scores.clustering import kmeans  # imports torch (a second at start-up): only when clustering

    clusters = timer.run("kmeans", lambda: kmeans(
        matrix, settings.clusters, seed=settings.seed, n_init=settings.kmeans_inits,
        progress=_step(progress, 0.1, 0.5, "Clustering"), cancel=cancel))
    center_distance = own_center_distance(matrix, clusters.labels, clusters.centers)
    center_distance[broken] = np.inf  # a repaired row is never a fallback reference token
    reference = choose_reference(table, center_distance, settings.reference_ids)
    if broken[reference.ids].any() and not broken[reference.ids].all():  # repaired rows are no evidence
        reference = ReferenceSet(reference.ids[~broken[reference.ids]], reference.rule + ", NaN/inf rows left out")
    projections: dict[str, np.ndarray] = dict(projected or {})
    axes = None  # the input matrix's principal axes, computed once when both the PCA map and PC1 need them
    if "pca" in settings.projections and "pca" not in projections and unembedding is matrix:
        axes = timer.run("principal_axes", lambda: principal_axes(matrix, 2, settings.seed))
    inputs = ScoringInputs(matrix, unembedding, clusters.labels, clusters.centers, reference.ids, axes=axes)
    scores: dict[str, np.ndarray] = {}
    for i, ind in enumerate(INDICATORS):
        cancel.check()
        progress(0.5 + 0.1 * i / len(INDICATORS), f"Indicators: {ind}")
        score = timer.run(f"indicator:{ind}", lambda name=ind: compute_all(inputs, [name])[name])
        scores[ind] = rank_broken_first(score, broken, INDICATORS[ind].suspicious)
    share = 0.4 / max(len(settings.projections), 1)
    for i, method in enumerate(settings.projections):
        if method in projections:
            continue
        step = _step(progress, 0.6 + i * share, 0.6 + (i + 1) * share, f"Projection {method.upper()}")
        projections[method] = timer.run(f"projection:{method}", lambda m=method, report=step: project(
            matrix, m, settings.seed, report, cancel, axes))
    info = ModelInfo(name=name, title=model.source.display_name, fingerprint=model.fingerprint,
                     architecture=model.architecture, n_tokens=n, dim=dim, tied=model.tied,
                     generative=model.generative, notes=notes)
    progress(1.0, "Done: analysis complete")
    settings_json = json.loads(json.dumps(asdict(settings)))  # exactly as an analysis file keeps them
    return Analysis(model=info, settings=settings_json, table=table, scores=scores,
                    labels=clusters.labels, centers=clusters.centers, inertia=clusters.inertia,
                    reference=reference, projections=projections,
                    flagged=np.zeros(n, dtype=bool), timings=timer.timings)


def scan(name: str, settings: ScanSettings | None = None, progress: ProgressFn = no_progress,
         cancel: CancelToken | None = None,
         on_map: Callable[[np.ndarray], None] | None = None) -> tuple[LoadedModel, Analysis]:
    """Load a model by name and analyse it: the whole headless pipeline."""
    start = time.perf_counter()
    model = open_model(name, sub_progress(progress, 0.0, 0.3), cancel)
    load_time = time.perf_counter() - start
    analysis = scan_model(model, name, settings, sub_progress(progress, 0.3, 1.0), cancel, on_map)
    analysis.timings = {"load": round(load_time, 3), **analysis.timings}
    return model, analysis


def scan_model(model: LoadedModel, name: str, settings: ScanSettings | None = None,
               progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
               on_map: Callable[[np.ndarray], None] | None = None) -> Analysis:
    """Analyse a loaded model. `on_map(coords)`, when given, receives the PCA map as soon as the
    matrix is read, before the slow steps (token table, k-means), so that a front end can show
    every token in seconds (for a large matrix, on the axes of a row sample: see `first_map`)."""
    settings = settings or ScanSettings()
    cancel = cancel or CancelToken()
    timer = _Timer()
    projected: dict[str, np.ndarray] = {}
    if on_map is not None:
        progress(0.0, "Map: PCA of the embedding matrix")
        coords, exact = timer.run("projection:first_map", lambda: first_map(finite_matrices(model)[0], settings.seed))
        on_map(coords)
        if exact:
            projected["pca"] = coords
    analysis = analyse(model, name, settings, sub_progress(progress, 0.03, 1.0), cancel, projected=projected)
    analysis.timings = {**timer.timings, **analysis.timings}
    return analysis
