"""Helpers for tests that drive the window: open a model and wait for it, wait for a job."""

from __future__ import annotations

from glitchview.gui.main_window import MainWindow

LOAD_TIMEOUT_MS = 180_000


def open_and_wait(qtbot, win: MainWindow, name: str, fresh: bool = True) -> None:
    """Open a model and wait for its analysis (computed afresh unless `fresh` is False, so that a
    test never sees another test's flags through the analysis cache)."""
    with qtbot.waitSignal(win.hub.analysisChanged, timeout=LOAD_TIMEOUT_MS):
        win.open_model(name, fresh=fresh)


def wait_job(qtbot, win: MainWindow) -> None:
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=LOAD_TIMEOUT_MS)
