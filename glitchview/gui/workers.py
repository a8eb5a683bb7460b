"""The window's one job runner: core functions on a thread pool, progress, results and errors
relayed as queued signals, each result handed to the callback its job was started with.

A job is a plain function `job(progress, cancel) -> result` that never touches Qt. Jobs run in
lanes: the analysis (open, re-cluster, maps, colourings, saves, exports), the prompt editor
(runs and verification), the autosave, the current token's neighbours and text searches (table
filter, find), so that prompting never cancels an analysis. Starting a
job cancels the one running in its lane, and an event of a superseded job is dropped."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import Cancelled, GlitchViewError
from ..core.logs import LOGGER
from ..core.progress import CancelToken, ProgressFn

Job = Callable[[ProgressFn, CancelToken], Any]
LANES = ("analysis", "prompt", "autosave", "neighbours", "search")


class _Relay(QObject):
    progress = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int)


class _Task(QRunnable):
    def __init__(self, job_id: int, job: Job, cancel: CancelToken, relay: _Relay) -> None:
        super().__init__()
        self.job_id, self.job, self.cancel, self.relay = job_id, job, cancel, relay
        self.setAutoDelete(True)

    def run(self) -> None:
        def progress(fraction: float, message: str) -> None:
            self.relay.progress.emit(self.job_id, float(fraction), message)

        try:
            result = self.job(progress, self.cancel)
        except Cancelled:
            self.relay.cancelled.emit(self.job_id)
        except GlitchViewError as exc:
            self.relay.failed.emit(self.job_id, str(exc), "")
        except Exception as exc:  # a bug or an unexpected library error: report it, never crash
            self.relay.failed.emit(self.job_id, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.relay.finished.emit(self.job_id, result)


@dataclass
class _Running:
    job_id: int
    name: str
    lane: str
    cancel: CancelToken
    on_done: Callable[[Any], None]


class JobRunner(QObject):
    progress = Signal(str, float, str)  # lane, fraction, message
    finished = Signal(str, object)  # job name, result (after its callback ran)
    failed = Signal(str, str, str)  # job name, message, traceback (empty for expected errors)
    cancelled = Signal(str)  # job name
    busyChanged = Signal(str, bool)  # lane, busy

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)
        self._relay.finished.connect(self._on_finished)
        self._relay.failed.connect(self._on_failed)
        self._relay.cancelled.connect(self._on_cancelled)
        self._next_id = 0
        self._running: dict[str, _Running] = {}  # lane -> its current job

    def busy_in(self, lane: str) -> bool:
        return lane in self._running

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def start(self, name: str, job: Job, on_done: Callable[[Any], None], lane: str = "analysis") -> int:
        """Cancel the job running in `lane` and start `job`; `on_done(result)` runs on the GUI thread."""
        assert lane in LANES, lane
        self.cancel(lane)
        self._next_id += 1
        was_busy = lane in self._running
        self._running[lane] = _Running(self._next_id, name, lane, CancelToken(), on_done)
        if not was_busy:
            self.busyChanged.emit(lane, True)
        QThreadPool.globalInstance().start(_Task(self._next_id, job, self._running[lane].cancel, self._relay))
        return self._next_id

    def cancel(self, lane: str | None = None) -> None:
        """Cancel the job of one lane, or of every lane."""
        for key, running in self._running.items():
            if lane is None or key == lane:
                running.cancel.cancel()

    def _current(self, job_id: int) -> _Running | None:
        return next((r for r in self._running.values() if r.job_id == job_id), None)

    def _end(self, running: _Running) -> None:
        del self._running[running.lane]
        self.busyChanged.emit(running.lane, False)

    def _on_progress(self, job_id: int, fraction: float, message: str) -> None:
        running = self._current(job_id)
        if running is not None:
            self.progress.emit(running.lane, fraction, message)

    def _on_finished(self, job_id: int, result: object) -> None:
        running = self._current(job_id)
        if running is None:
            return
        self._end(running)
        try:
            running.on_done(result)
        except Exception as exc:  # a result the window could not apply: report it like a failed job
            self._report(running, f"{type(exc).__name__}: {exc}" if not isinstance(exc, GlitchViewError)
                         else str(exc), traceback.format_exc())
            return
        self.finished.emit(running.name, result)

    def _on_failed(self, job_id: int, message: str, details: str) -> None:
        running = self._current(job_id)
        if running is not None:
            self._end(running)
        self._report(running, message, details)

    def _report(self, running: _Running | None, message: str, details: str) -> None:
        LOGGER.error("job failed: %s\n%s", message, details or "(expected error, no traceback)")
        if running is not None:
            self.failed.emit(running.name, message, details)

    def _on_cancelled(self, job_id: int) -> None:
        running = self._current(job_id)
        if running is not None:
            self._end(running)
            self.cancelled.emit(running.name)
