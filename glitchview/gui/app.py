"""Starting the desktop application: `glitchview-gui [MODEL | FILE.gva.npz]`, `python main.py`."""

from __future__ import annotations

import argparse
import sys

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication

from ..core.logs import setup_logging
from ..core.session import SUFFIX
from ..core.sources import DEFAULT_MODEL

APP_NAME = "GlitchView"
APP_ID = "io.github.glitchview.GlitchView"


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication, created once, named so that QSettings and the desktop entry match."""
    QCoreApplication.setOrganizationName(APP_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setDesktopFileName(APP_ID)
    app.setStyle("Fusion")
    setup_logging()
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glitchview-gui", description="GlitchView desktop application")
    parser.add_argument("target", nargs="?", default=DEFAULT_MODEL,
                        help=f"a model (demo name, folder or .gguf; default {DEFAULT_MODEL}) or an analysis file")
    args = parser.parse_args(argv)
    app = create_application()
    from .main_window import MainWindow

    window = MainWindow()
    window.show()
    if args.target.endswith((SUFFIX, ".npz")):
        window.open_analysis(args.target)
    else:
        window.open_model(args.target)
    window.offer_restore()
    return app.exec()
