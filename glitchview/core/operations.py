"""What a user can do with a session, as plain functions of a `Snapshot` that return a typed,
stamped `Result` (see `core.session`). They run on any thread, never touch the live session, and
load the model (or build the network) only when they need it. The window runs them as jobs; the
command line and the tests call them directly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .analysis import Analysis
from .errors import GlitchViewError
from .model.loading import finite_matrices
from .pipeline import ScanSettings, analyse, model_changed, project, reopen_model, scan_model
from .pipeline import open_model as load_named_model
from .progress import CancelToken, ProgressFn, no_progress, sub_progress
from .scores.neighbours import Neighbours, cosine_neighbours
from .session import Result, Session, Snapshot
from .store import analysis_cache
from .store.analysis_file import load_analysis, save_analysis
from .store.export import write_csv, write_filter_list
from .verify.engines import DEFAULT_ENGINE, EngineChoice, load_engine
from .verify.generation import GenerationSettings, behaviour_verdict, generate, output_metrics, pick_control_token
from .verify.probing import Verification, verify_tokens
from .verify.templates import PLACEHOLDER, encode_template, fill
from .view.colouring import Colouring, colouring_for
from .view.mapindex import MapIndex, build_map_index
from .view.prepare import ViewData, prepare_view_data

if TYPE_CHECKING:
    from .model.loading import LoadedModel
    from .verify.engines import Engine


# --- opening: each makes a new session ----------------------------------------------------------
@dataclass(frozen=True)
class Opened:
    """An analysis prepared for the views, ready to become a new `Session`."""

    analysis: Analysis
    view: ViewData
    model: LoadedModel | None = None
    path: str = ""  # the analysis file it was read from
    warning: str = ""  # set when the model changed on disk since that file was saved
    computed_at: str = ""  # set when the model's last analysis was restored from the cache

    def session(self) -> Session:
        return Session(self.analysis, self.view, self.model, self.path, self.analysis.selection)


def open_model(name: str, settings: ScanSettings | None = None, progress: ProgressFn = no_progress,
               cancel: CancelToken | None = None, on_map: Callable[[np.ndarray], None] | None = None,
               reuse: bool = False, remember: bool = False) -> Opened:
    """Load and analyse a model; `on_map(coords)` receives its PCA map first (see `pipeline.scan`).
    With `reuse`, the model's last analysis is restored from the analysis cache when there is one;
    with `remember`, a new analysis is kept there as the model's last one."""
    start = time.perf_counter()
    model = load_named_model(name, sub_progress(progress, 0, 0.3), cancel)
    loaded = round(time.perf_counter() - start, 3)
    cached = analysis_cache.load_cached(model.fingerprint) if reuse else None
    if cached is not None:
        progress(0.5, f"Restoring the analysis computed {cached.computed_at}")
        view = prepare_view_data(cached.analysis, sub_progress(progress, 0.5, 1.0))
        return Opened(cached.analysis, view, model, computed_at=cached.computed_at)
    analysis = scan_model(model, name, settings, sub_progress(progress, 0.3, 0.95), cancel, on_map)
    analysis.timings = {"load": loaded, **analysis.timings}
    view = prepare_view_data(analysis, sub_progress(progress, 0.95, 1.0))
    if remember:
        analysis_cache.store(analysis, new=True)
    return Opened(analysis, view, model)


def open_analysis(path: Path, progress: ProgressFn = no_progress, keep_path: bool = True) -> Opened:
    """Read an analysis file; `keep_path=False` for one that must never be saved over (the autosave)."""
    progress(0.1, f"Reading {Path(path).name}")
    analysis = load_analysis(Path(path))
    return Opened(analysis, prepare_view_data(analysis, sub_progress(progress, 0.5, 1.0)),
                  path=str(path) if keep_path else "", warning=model_changed(analysis))


# --- the model and the network of a snapshot ------------------------------------------------------
def model_of(snapshot: Snapshot, progress: ProgressFn = no_progress,
             cancel: CancelToken | None = None) -> LoadedModel:
    """The snapshot's model, loaded again (and refused if it changed) when the analysis came from a file."""
    if snapshot.model is not None:
        return snapshot.model
    return reopen_model(snapshot.analysis.model, progress, cancel)


def probe_of(snapshot: Snapshot, progress: ProgressFn = no_progress,
             cancel: CancelToken | None = None) -> tuple[LoadedModel, Engine]:
    """The engine the snapshot's choice names, built once per session (the result hands it back to keep)."""
    model = model_of(snapshot, sub_progress(progress, 0, 0.5), cancel)
    if snapshot.probe is not None:
        return model, snapshot.probe
    progress(0.6, f"Preparing the {snapshot.engine.label} engine")
    return model, load_engine(model, snapshot.engine, sub_progress(progress, 0.6, 1.0), cancel)


# --- recomputing parts of the analysis ---------------------------------------------------------------
@dataclass(frozen=True)
class Reclustered(Result):
    analysis: Analysis
    view: ViewData
    model: LoadedModel

    def apply_to(self, session: Session) -> None:
        session.adopt_model(self.model)
        session.replace_analysis(self.analysis, self.view)


def recluster(snapshot: Snapshot, k: int, progress: ProgressFn = no_progress,
              cancel: CancelToken | None = None) -> Reclustered:
    """A new clustering with `k` clusters of the snapshot's own model; flags, verdicts, corpus counts and
    maps are kept (they do not depend on k)."""
    old = snapshot.analysis
    model = model_of(snapshot, sub_progress(progress, 0, 0.2), cancel)
    settings = ScanSettings(**{**old.settings, "clusters": k, "projections": ()})
    new = analyse(model, old.model.name, settings, sub_progress(progress, 0.2, 0.95), cancel, table=old.table)
    new.projections, new.settings["projections"] = dict(old.projections), list(old.projections)
    new.flagged, new.verdicts, new.view, new.selection = old.flagged, old.verdicts, dict(old.view), old.selection
    if old.corpus is not None:  # the counts do not depend on k (a comparison does, through A's clusters: dropped)
        new.set_corpus(old.corpus)
    return Reclustered(snapshot.stamp, new, prepare_view_data(new, sub_progress(progress, 0.95, 1.0)), model)


@dataclass(frozen=True)
class Projected(Result):
    name: str
    coords: np.ndarray
    index: MapIndex
    model: LoadedModel

    def apply_to(self, session: Session) -> None:
        session.adopt_model(self.model)
        session.add_projection(self.name, self.coords, self.index)


def project_map(snapshot: Snapshot, method: str, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> Projected:
    model = model_of(snapshot, sub_progress(progress, 0, 0.2), cancel)
    coords = project(finite_matrices(model)[0], method, snapshot.analysis.settings.get("seed", 0),
                     sub_progress(progress, 0.2, 0.95), cancel)
    return Projected(snapshot.stamp, method, coords, build_map_index(coords, snapshot.analysis.labels), model)


@dataclass(frozen=True)
class Coloured(Result):
    colouring: Colouring

    def apply_to(self, session: Session) -> None:
        session.add_colouring(self.colouring)


def colour(snapshot: Snapshot, name: str, progress: ProgressFn = no_progress,
           cancel: CancelToken | None = None) -> Coloured:
    return Coloured(snapshot.stamp, colouring_for(snapshot.analysis, name))


@dataclass(frozen=True)
class NearestFound(Result):
    token: int
    spaces: dict[str, Neighbours]  # "input embedding" / "unembedding" -> neighbours
    model: LoadedModel

    def apply_to(self, session: Session) -> None:
        session.adopt_model(self.model)
        session.set_neighbours(self.token, self.spaces)


def nearest(snapshot: Snapshot, k: int, progress: ProgressFn = no_progress,
            cancel: CancelToken | None = None) -> NearestFound:
    """The snapshot's current token's nearest neighbours by cosine, in both embedding spaces."""
    token = snapshot.token
    if token < 0:
        raise GlitchViewError("select a token first")
    model = model_of(snapshot, progress, cancel)
    spaces = {"input embedding": cosine_neighbours(model.input_embeddings, token, k)}
    if not model.tied:
        spaces["unembedding"] = cosine_neighbours(model.unembedding, token, k)
    return NearestFound(snapshot.stamp, token, spaces, model)


# --- verification and prompting -------------------------------------------------------------------------
@dataclass(frozen=True)
class Verified(Result):
    verification: Verification
    model: LoadedModel
    probe: Engine
    choice: EngineChoice = DEFAULT_ENGINE

    def apply_to(self, session: Session) -> None:
        session.adopt_model(self.model, self.probe, self.choice)
        v = self.verification
        session.record_verification(v.ids, v.verdicts, v.max_prob, v.reasons)


def verify(snapshot: Snapshot, ids: list[int] | np.ndarray, mode: str, progress: ProgressFn = no_progress,
           cancel: CancelToken | None = None, confirm: bool = True) -> Verified:
    """The repetition test on `ids` (`fast` screens, then confirms its suspects with the full test
    unless `confirm` is False)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        raise GlitchViewError("nothing to verify: select tokens first")
    if not snapshot.analysis.model.generative:
        raise GlitchViewError(f"{snapshot.analysis.model.title} is an encoder: it cannot be prompted")
    model, probe = probe_of(snapshot, sub_progress(progress, 0, 0.1), cancel)
    result = verify_tokens(probe, ids.tolist(), mode, sub_progress(progress, 0.1, 1.0), cancel, confirm)
    return Verified(snapshot.stamp, result, model, probe, snapshot.engine)


@dataclass(frozen=True)
class PromptRan(Result):
    record: dict[str, Any]  # template, settings and each run's output, metrics and verdict
    model: LoadedModel
    probe: Engine
    choice: EngineChoice = DEFAULT_ENGINE

    def apply_to(self, session: Session) -> None:
        session.adopt_model(self.model, self.probe, self.choice)
        session.record_prompt_run(self.record)


OnToken = Callable[[int, str, float], None]  # run (0 the token, 1 the control), text piece, probability
OnRun = Callable[[int, int], None]  # run, token id


def run_prompt(snapshot: Snapshot, text: str, settings: GenerationSettings, on_run: OnRun, on_token: OnToken,
               progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> PromptRan:
    """Generate from the template `text` with the snapshot's token and with an ordinary control token."""
    a, token = snapshot.analysis, snapshot.token
    if not 0 <= token < len(a):
        raise GlitchViewError("select a token first")
    if PLACEHOLDER not in text:
        raise GlitchViewError(f"the template needs a {PLACEHOLDER} placeholder")
    model, probe = probe_of(snapshot, progress, cancel)
    unembedding = a.scores.get("unembedding_cosine", np.full(len(a), np.nan))
    control = pick_control_token(a.table, unembedding, token)
    template = encode_template(probe.tokenizer, text)
    record: dict[str, Any] = {"template": text, "settings": settings.__dict__, "engine": probe.description, "runs": []}
    for run, tid in enumerate((token, control)):
        on_run(run, tid)
        progress(0.5 * run, f"Generating with token {tid}")
        out = generate(probe, fill(template, np.array([tid]))[0], settings,
                       on_token=lambda _id, piece, p, r=run: on_token(r, piece, p), cancel=cancel)
        metrics = output_metrics(out, tid, a.table.texts[tid])
        anomalous, reasons = behaviour_verdict(metrics)
        record["runs"].append({"token": int(tid), "output": out.text, "stopped": out.stopped,
                               "anomalous": anomalous, "reasons": reasons,
                               "metrics": {m: float(v) for m, v in metrics.items()}})
        if out.stopped == "cancelled":
            break
    return PromptRan(snapshot.stamp, record, model, probe, snapshot.engine)


# --- writing ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Saved(Result):
    path: str

    def apply_to(self, session: Session) -> None:
        session.set_path(self.path)


def save(snapshot: Snapshot, path: Path, progress: ProgressFn = no_progress,
         cancel: CancelToken | None = None) -> Saved:
    return Saved(snapshot.stamp, str(save_analysis(snapshot.analysis, Path(path))))


@dataclass(frozen=True)
class Exported(Result):
    count: int
    path: str
    what: str = field(default="tokens")

    def apply_to(self, session: Session) -> None:
        """Writing a file changes nothing in the session."""


def export_tokens(snapshot: Snapshot, which: str, path: Path, progress: ProgressFn = no_progress,
                  cancel: CancelToken | None = None) -> Exported:
    """Write the flagged or selected tokens to CSV, ordered by the current indicator's rank."""
    a = snapshot.analysis
    ids = np.flatnonzero(a.flagged if which == "flagged" else a.selection)
    if ids.size == 0:
        raise GlitchViewError(f"nothing to export: no {'flagged' if which == 'flagged' else 'selected'} tokens")
    order = ids[np.argsort(a.ranking(snapshot.indicator).rank[ids], kind="stable")]
    return Exported(snapshot.stamp, write_csv(a, Path(path), order, snapshot.indicator), str(path), f"{which} tokens")


def export_filter_list(snapshot: Snapshot, path: Path, progress: ProgressFn = no_progress,
                       cancel: CancelToken | None = None) -> Exported:
    """The verified glitch tokens as a JSON filter list (bad_words_ids / logits mask)."""
    return Exported(snapshot.stamp, write_filter_list(snapshot.analysis, Path(path)), str(path), "glitch tokens")
