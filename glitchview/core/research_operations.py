"""The research operations on a session (see `core.operations` for the pattern): count a corpus,
compare with a second model or analysis, write the per-model report. Each is a plain function of a
`Snapshot` returning a stamped `Result`; the window runs them as jobs, the command line calls the
same core functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .analysis import Analysis
from .operations import Exported, model_of
from .pipeline import scan
from .progress import CancelToken, ProgressFn, no_progress, sub_progress
from .scores.compare import Comparison, compare
from .scores.corpus import CorpusCounts, count_model_corpus
from .session import Result, Session, Snapshot
from .store.analysis_file import load_analysis


def analysis_of(target: str, progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> Analysis:
    """An analysis file read, or a model (demo name, folder, .gguf) scanned with the default settings."""
    if str(target).endswith(".npz"):
        progress(0.0, f"Reading {Path(target).name}")
        return load_analysis(Path(target))
    return scan(str(target), progress=progress, cancel=cancel)[1]


def _keep(session: Session) -> None:
    """Show what was just added to the live analysis: the table gets its columns, the map its colourings."""
    session.replace_analysis(session.analysis, session.view)


@dataclass(frozen=True)
class CorpusCounted(Result):
    corpus: CorpusCounts

    def apply_to(self, session: Session) -> None:
        session.analysis.set_corpus(self.corpus)
        _keep(session)


def count_corpus(snapshot: Snapshot, paths: list[Path], column: str = "text", progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> CorpusCounted:
    model = model_of(snapshot, sub_progress(progress, 0, 0.05), cancel)
    return CorpusCounted(snapshot.stamp, count_model_corpus(model, paths, column, None,
                                                            sub_progress(progress, 0.05, 1.0), cancel))


@dataclass(frozen=True)
class Compared(Result):
    comparison: Comparison

    def apply_to(self, session: Session) -> None:
        session.analysis.comparison = self.comparison
        _keep(session)


def compare_with(snapshot: Snapshot, target: str, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> Compared:
    """Compare the snapshot's analysis (A) with a second model or analysis file (B)."""
    other = analysis_of(target, sub_progress(progress, 0, 0.95), cancel)
    return Compared(snapshot.stamp, compare(snapshot.analysis, other))


def export_report(snapshot: Snapshot, folder: Path, progress: ProgressFn = no_progress,
                  cancel: CancelToken | None = None) -> Exported:
    from .store.report import write_report

    html, _ = write_report(snapshot.analysis, Path(folder), progress)
    return Exported(snapshot.stamp, 1, str(html), "report")
