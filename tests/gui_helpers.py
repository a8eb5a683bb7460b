"""Helpers for tests that drive the window: open a model and wait for it, wait for a job."""

from __future__ import annotations

from glitchview.gui.main_window import MainWindow

LOAD_TIMEOUT_MS = 180_000


def open_and_wait(qtbot, win: MainWindow, name: str) -> None:
    with qtbot.waitSignal(win.hub.analysisChanged, timeout=LOAD_TIMEOUT_MS):
        win.open_model(name)


def wait_job(qtbot, win: MainWindow) -> None:
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=LOAD_TIMEOUT_MS)
