"""Autosave: the user's flags, selection and verification results are written to the data folder
shortly after every change (and every minute), off the GUI thread. A clean exit removes the file;
finding it at start means the last session died, and the window offers to restore it. The same
writes keep the model's last analysis in the analysis cache up to date, so that opening the model
again shows it as the user left it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer

from ..core.logs import data_root
from ..core.progress import CancelToken, ProgressFn
from ..core.store import analysis_cache
from ..core.store.analysis_file import SUFFIX, save_analysis
from .hub import SessionHub
from .workers import JobRunner

DEBOUNCE_MS = 2_000
PERIOD_MS = 60_000


def autosave_path() -> Path:
    return data_root() / "autosave" / f"last-session{SUFFIX}"


def pending_autosave() -> Path | None:
    """The autosave a crashed session left behind, if any."""
    path = autosave_path()
    return path if path.exists() else None


class Autosaver(QObject):
    def __init__(self, hub: SessionHub, jobs: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.hub, self.jobs = hub, jobs
        self.dirty = False
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.save_now)
        self._period = QTimer(self, interval=PERIOD_MS)
        self._period.timeout.connect(self.save_now)
        self._period.start()
        for signal in (hub.flagsChanged, hub.selectionChanged, hub.verdictsChanged):
            signal.connect(self._changed)

    def _changed(self) -> None:
        self.dirty = True
        self._debounce.start()

    def save_now(self) -> None:
        """Write the current analysis to the autosave file (on a worker) if anything changed."""
        if not self.dirty or self.hub.session is None or self.jobs.busy_in("autosave"):
            return
        self.dirty = False
        analysis, path = self.hub.session.snapshot("autosave").analysis, autosave_path()

        def job(progress: ProgressFn, cancel: CancelToken) -> None:
            save_analysis(analysis, path)
            analysis_cache.store(analysis)  # what the model shows when it is opened again

        self.jobs.start("autosave", job, lambda _: None, "autosave")

    def discard(self) -> None:
        """A clean exit: nothing to restore next time."""
        self._debounce.stop()
        self._period.stop()
        autosave_path().unlink(missing_ok=True)
