"""Hostile analysis files in the window (issue 12): the model path is a FIFO and the title is built
to break display; the labels are a million. The window must stay responsive, show the title
escaped, and refuse the damaged file with a message instead of freezing on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from gui_helpers import LOAD_TIMEOUT_MS
from tiny_models import TinyModel

from glitchview.gui.main_window import MainWindow


def _saved_with(tiny_hf: TinyModel, folder: Path, change) -> Path:
    from glitchview.core.pipeline import ScanSettings, scan
    from glitchview.core.store.analysis_file import save_analysis

    path = save_analysis(scan(str(tiny_hf.path), ScanSettings(clusters=3))[1], folder / "a.gva.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    change(arrays, meta)
    np.savez(path, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return path


def test_fifo_model_and_hostile_title_open_promptly_and_escaped(qtbot, window: MainWindow, tiny_hf: TinyModel,
                                                                tmp_path: Path, request) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    request.addfinalizer(lambda: os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK)))  # frees a hung open()

    def change(arrays, meta):
        meta["model"].update(name=str(fifo), title="\u202eevil\ntitle")

    path = _saved_with(tiny_hf, tmp_path, change)
    with qtbot.waitSignal(window.hub.analysisChanged, timeout=20_000):  # no hang on the FIFO
        window.open_analysis(str(path))
    assert window.windowTitle() == "GlitchView — \\u202eevil\\ntitle"


def test_labels_of_a_million_are_refused_not_painted(qtbot, window: MainWindow, tiny_hf: TinyModel,
                                                     tmp_path: Path) -> None:
    path = _saved_with(tiny_hf, tmp_path, lambda arrays, meta: arrays.update(labels=np.full_like(arrays["labels"],
                                                                                                10**6)))
    with qtbot.waitSignal(window.jobs.failed, timeout=LOAD_TIMEOUT_MS):
        window.open_analysis(str(path))
    assert "cluster labels out of range" in window.last_error
