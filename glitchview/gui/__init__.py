"""The desktop window (PySide6 + pyqtgraph): map, outlier table, panels. No numeric work runs on
the GUI thread: computations go through `workers.JobRunner` to the core."""

from __future__ import annotations


def main() -> int:
    from .app import main as app_main

    return app_main()
