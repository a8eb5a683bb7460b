"""GlitchView's log file, in the user's data folder: every failure a worker reports is written
there with its traceback, so that a message shown in a dialog can be followed up later."""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOGGER = logging.getLogger("glitchview")


def data_root() -> Path:
    """The user data folder (GLITCHVIEW_DATA_DIR, else XDG_DATA_HOME/glitchview)."""
    explicit = os.environ.get("GLITCHVIEW_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "glitchview"


def log_folder() -> Path:
    return data_root() / "logs"


def log_path() -> Path:
    return log_folder() / "glitchview.log"


def setup_logging() -> Path:
    """Send GlitchView's log to the rotating log file (once per process)."""
    path = log_path()
    if not any(isinstance(h, RotatingFileHandler) and Path(h.baseFilename) == path for h in LOGGER.handlers):
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        LOGGER.addHandler(handler)
        LOGGER.setLevel(logging.INFO)
    return path
