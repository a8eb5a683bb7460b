"""Runs core functions on a thread pool and relays progress, results and errors as queued signals.

A job is a plain function `job(progress, cancel) -> result` that never touches Qt. Each
`JobRunner` runs one job at a time: starting a new one cancels the old one, and a result or error
from a superseded job is dropped, so a stale result is never applied to a new model."""

from __future__ import annotations

import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import Cancelled, GlitchViewError
from ..core.logs import LOGGER
from ..core.progress import CancelToken, ProgressFn

Job = Callable[[ProgressFn, CancelToken], Any]


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


class JobRunner(QObject):
    """One job at a time on the global thread pool; signals carry only the current job's events."""

    progress = Signal(float, str)
    finished = Signal(str, object)  # job name, result
    failed = Signal(str, str, str)  # job name, message, traceback (empty for expected errors)
    cancelled = Signal(str)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)
        self._relay.finished.connect(self._on_finished)
        self._relay.failed.connect(self._on_failed)
        self._relay.cancelled.connect(self._on_cancelled)
        self._job_id = 0
        self._name = ""
        self._cancel: CancelToken | None = None
        self._running = False

    @property
    def busy(self) -> bool:
        return self._running

    def start(self, name: str, job: Job) -> int:
        """Cancel any running job and start `job`; returns its id."""
        self.cancel()
        self._job_id += 1
        self._name = name
        self._cancel = CancelToken()
        self._set_running(True)
        QThreadPool.globalInstance().start(_Task(self._job_id, job, self._cancel, self._relay))
        return self._job_id

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def _set_running(self, running: bool) -> None:
        if running != self._running:
            self._running = running
            self.busyChanged.emit(running)

    def _current(self, job_id: int) -> bool:
        return job_id == self._job_id

    def _on_progress(self, job_id: int, fraction: float, message: str) -> None:
        if self._current(job_id):
            self.progress.emit(fraction, message)

    def _on_finished(self, job_id: int, result: object) -> None:
        if self._current(job_id):
            self._set_running(False)
            self.finished.emit(self._name, result)

    def _on_failed(self, job_id: int, message: str, details: str) -> None:
        LOGGER.error("job failed: %s\n%s", message, details or "(expected error, no traceback)")
        if self._current(job_id):
            self._set_running(False)
            self.failed.emit(self._name, message, details)

    def _on_cancelled(self, job_id: int) -> None:
        if self._current(job_id):
            self._set_running(False)
            self.cancelled.emit(self._name)
