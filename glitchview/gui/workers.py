"""The window's one job runner: core functions on worker threads, progress, results and errors
handed back to the GUI thread, each result to the callback its job was started with.

A job is a plain function `job(progress, cancel) -> result` that never touches Qt. Jobs run in
lanes: the analysis (open, re-cluster, maps, colourings, saves, exports), the prompt editor
(runs and verification), the autosave, the current token's neighbours and text searches (table
filter, find), so that prompting never cancels an analysis. Starting a
job cancels the one running in its lane, and an event of a superseded job is dropped.

Worker threads make no Qt call at all: they put events on a plain queue that a timer drains on the
GUI thread. A queued signal emitted from a worker takes Qt's signal-slot lock and then needs the GIL,
while the GUI thread, holding the GIL inside a PySide call, may wait for that lock (destroying a
window, disconnecting): a deadlock that froze the test suite for good. Workers are daemon threads, so
a native step that cannot be interrupted never keeps the process from ending.

Python's cyclic garbage collector runs in whichever thread happens to allocate: a cycle holding a Qt
wrapper collected on a worker destroys that QObject there, inside Qt's lock and waiting for the GIL,
while the GUI thread holds the GIL destroying another object and waits for that lock (seen once in
the test suite: the report job's thread collecting a menu's action). While any job thread is alive the
automatic collection is paused; the GUI thread turns it back on when the last one has ended."""

from __future__ import annotations

import gc
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.errors import Cancelled, GlitchViewError
from ..core.logs import LOGGER
from ..core.progress import CancelToken, ProgressFn

Job = Callable[[ProgressFn, CancelToken], Any]
LANES = ("analysis", "prompt", "autosave", "neighbours", "search")
DRAIN_MS = 15  # how often the GUI thread collects what the workers posted
_threads: set[threading.Thread] = set()  # every job thread still running, of every window


def live_threads() -> list[threading.Thread]:
    """The job threads still running (a cancelled job may still be inside a native step)."""
    return [t for t in list(_threads) if t.is_alive()]


def wait_for_threads(seconds: float) -> bool:
    """Wait up to `seconds` for every job thread to end; True when none is left."""
    deadline = time.monotonic() + seconds
    for thread in live_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    return not live_threads()


class _Collection:
    """Whether the job runners paused the automatic garbage collection (touched on the GUI thread only)."""

    paused = False

    @classmethod
    def pause(cls) -> None:
        if gc.isenabled():
            gc.disable()
            cls.paused = True

    @classmethod
    def resume_when_idle(cls) -> bool:
        """Turn the collection back on once no job thread is alive; True while it stays paused."""
        if cls.paused and not live_threads():
            gc.enable()
            cls.paused = False
        return cls.paused


def _run_job(job_id: int, job: Job, cancel: CancelToken, runner: JobRunner) -> None:
    post = runner.post

    def progress(fraction: float, message: str) -> None:
        post(runner._on_progress, job_id, float(fraction), message)

    try:
        result = job(progress, cancel)
    except Cancelled:
        post(runner._on_cancelled, job_id)
    except GlitchViewError as exc:
        post(runner._on_failed, job_id, str(exc), "")
    except Exception as exc:  # a bug or an unexpected library error: report it, never crash
        post(runner._on_failed, job_id, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    else:
        post(runner._on_finished, job_id, result)
    finally:
        _threads.discard(threading.current_thread())


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
        self._inbox: queue.SimpleQueue[tuple[Callable[..., None], tuple]] = queue.SimpleQueue()
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._timer.timeout.connect(self._drain)
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
        _Collection.pause()
        thread = threading.Thread(target=_run_job, name=f"glitchview {name}", daemon=True,
                                  args=(self._next_id, job, self._running[lane].cancel, self))
        _threads.add(thread)
        thread.start()
        self._timer.start()
        return self._next_id

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Call `callback(*args)` on the GUI thread soon; safe from any thread (no Qt call here)."""
        self._inbox.put((callback, args))

    def _drain(self) -> None:
        while True:
            try:
                callback, args = self._inbox.get_nowait()
            except queue.Empty:
                break
            try:
                callback(*args)
            except Exception:  # a view that failed to show an event must not stop the others
                LOGGER.exception("event of a job could not be shown")
        if not _Collection.resume_when_idle() and not self._running:
            self._timer.stop()

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
