"""Progress reporting and cooperative cancellation shared by every long-running core function.

Core functions take a `progress(fraction, message)` callable and a `CancelToken`; they report
often and call `cancel.check()` between chunks of work, so that a GUI worker or the CLI can show
progress and stop a job within a fraction of a second without killing a thread."""

from __future__ import annotations

import threading
from typing import Callable

from .errors import Cancelled

ProgressFn = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that ignores every report."""


class CancelToken:
    """A thread-safe flag: one side calls `cancel()`, the worker calls `check()` between steps. A token
    made with a `parent` is cancelled with it, and can also be cancelled on its own (ending one part of
    a job, such as a helper process whose result is no longer wanted, without cancelling the job)."""

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)

    def check(self) -> None:
        """Raise `Cancelled` if cancellation was requested."""
        if self.cancelled:
            raise Cancelled("cancelled by the user")


def sub_progress(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    """Map a step's own 0..1 progress into the [start, end] range of the whole job."""

    def report(fraction: float, message: str) -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report
