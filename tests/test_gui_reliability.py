"""Hostile inputs and lifecycle in the window: a crash of the app loses nothing (autosave after
kill -9), an analysis of a changed model says so, stale jobs never land, closing during a job is
clean, rapid run/stop/run stays consistent, failures are logged, and tokens built to break
display are shown escaped everywhere."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import LOAD_TIMEOUT_MS, open_and_wait, wait_job
from tiny_models import TinyModel

from glitchview.core.logs import log_path
from glitchview.gui.autosave import autosave_path, pending_autosave
from glitchview.gui.main_window import MainWindow

HOSTILE = ["\u202eevil", "zero\u200bwidth", "nul\x00byte", "line\nbreak"]


@pytest.fixture(scope="module")
def hostile_model(tiny_hf: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """The tiny model with extra vocabulary entries made of bidi, zero-width, NUL and newline characters."""
    from safetensors.torch import load_file, save_file
    from tokenizers import AddedToken, Tokenizer

    folder = tmp_path_factory.mktemp("hostile") / "model"
    shutil.copytree(tiny_hf.path, folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.add_tokens([AddedToken(t, special=False) for t in HOSTILE])
    tok.save(str(folder / "tokenizer.json"))
    state = load_file(str(folder / "model.safetensors"))
    emb = state["model.embed_tokens.weight"]
    import torch

    state["model.embed_tokens.weight"] = torch.cat([emb, torch.randn(len(HOSTILE), emb.shape[1])])
    save_file(state, str(folder / "model.safetensors"))
    return folder, [tok.token_to_id(t) for t in HOSTILE]


def test_hostile_tokens_are_shown_escaped(qtbot, window: MainWindow, hostile_model, tmp_path: Path) -> None:
    folder, ids = hostile_model
    open_and_wait(qtbot, window, str(folder))
    model = window.table.model
    for token_id in ids:
        row = int(np.flatnonzero(model.rows == token_id)[0])
        shown = model.data(model.index(row, model.columns.index("token")))
        assert not any(c in shown for c in "\u202e\u200b\x00\n")
        assert "\\" in shown
        assert not any(c in window.detail.tooltip(token_id) for c in "\u202e\u200b\x00")
        window.show_token(token_id)
        assert not any(c in window.detail.text.toPlainText() for c in "\u202e\u200b\x00")
    window.session.set_flags(ids)
    out = tmp_path / "hostile.csv"
    window.export("flagged", str(out))
    wait_job(qtbot, window)
    text = out.read_text(encoding="utf-8")
    assert "\u202e" not in text and "\u200b" not in text and "\\u202eevil" in text


def test_autosave_survives_kill_9_and_is_restored(qtbot, tiny_hf: TinyModel, tmp_path: Path) -> None:
    assert pending_autosave() is None
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from glitchview.gui.app import create_application
        from glitchview.gui.main_window import MainWindow
        app = create_application()
        w = MainWindow()
        w.open_model({str(tiny_hf.path)!r}, fresh=True)
        while w.session is None:
            app.processEvents(); time.sleep(0.01)
        w.session.set_flags([7, 11, 42])
        w.session.select_ids([1, 2])
        w.autosaver.save_now()
        while w.autosaver.jobs.busy:
            app.processEvents(); time.sleep(0.01)
        print("saved", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                           env={**os.environ})
    assert child.returncode == -signal.SIGKILL and "saved" in child.stdout
    assert pending_autosave() == autosave_path()

    win = MainWindow()
    qtbot.addWidget(win)
    win.offer_restore()
    with qtbot.waitSignal(win.hub.analysisChanged, timeout=60_000):
        win.restore_box.accept()
    assert np.flatnonzero(win.session.analysis.flagged).tolist() == [7, 11, 42]
    assert win.session.selected_ids().tolist() == [1, 2]
    assert win.session.path == ""  # Ctrl+S will ask for a file, never overwrite the autosave
    win.close()
    assert pending_autosave() is None  # a clean exit leaves nothing to restore


def test_analysis_of_a_changed_model_says_so(qtbot, window: MainWindow, tiny_hf: TinyModel, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_hf.path, folder)
    open_and_wait(qtbot, window, str(folder))
    saved = tmp_path / "a.gva.npz"
    window.save_to(str(saved))
    wait_job(qtbot, window)
    config = folder / "config.json"
    config.write_text(config.read_text().replace("{", '{\n  "edited": true,', 1))  # the model changed on disk
    with qtbot.waitSignal(window.hub.analysisChanged, timeout=60_000):
        window.open_analysis(str(saved))
    assert "different version" in window.last_warning and "re-run" in window.last_warning


def test_a_superseded_job_never_lands(qtbot, window: MainWindow, tiny_hf: TinyModel, tiny_untied: TinyModel) -> None:
    window.open_model(str(tiny_hf.path))
    with qtbot.waitSignal(window.hub.analysisChanged, timeout=LOAD_TIMEOUT_MS):
        window.open_model(str(tiny_untied.path))
    qtbot.wait(2000)
    assert window.session.analysis.model.name == str(tiny_untied.path)
    assert not window.session.analysis.model.tied


def test_closing_during_a_job_is_clean(qtbot, tiny_hf: TinyModel) -> None:
    win = MainWindow()
    qtbot.addWidget(win)
    open_and_wait(qtbot, win, str(tiny_hf.path))
    win.request_projection("umap")
    qtbot.wait(500)
    assert win.jobs.busy
    start = time.monotonic()
    win.close()
    assert time.monotonic() - start < 1.0


def test_rapid_run_stop_run_and_failures_are_logged(qtbot, window: MainWindow, tiny_hf: TinyModel,
                                                    tmp_path: Path) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    window.show_token(17)
    window.prompt.max_tokens.setValue(200)
    for _ in range(3):
        window.prompt.run_button.click()
        window.prompt.stop_button.click()
    window.prompt.run()
    qtbot.waitUntil(lambda: not window.jobs.busy_in("prompt"), timeout=60_000)
    assert window.prompt.run_button.isEnabled() and not window.prompt.stop_button.isEnabled()
    assert window.prompt.last_result["runs"][0]["token"] == 17

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with qtbot.waitSignal(window.jobs.failed, timeout=60_000):
        window.open_model(str(broken))
    assert "broken.gguf" in log_path().read_text(encoding="utf-8")


def test_garbage_is_collected_on_the_gui_thread_only_while_jobs_run(qtbot) -> None:
    """A worker that allocates must never run the cyclic collector (it would destroy Qt objects of
    garbage cycles off the GUI thread: a deadlock seen once); it is back on when the jobs have ended."""
    import gc
    import threading

    from glitchview.gui.workers import JobRunner

    runner = JobRunner()
    release = threading.Event()
    seen: list[bool] = []

    def job(progress, cancel) -> int:
        release.wait(10)
        seen.append(gc.isenabled())
        return len([[i] for i in range(100_000)])  # allocates: the collector would run here if enabled

    done: list[int] = []
    assert gc.isenabled()
    runner.start("gc", job, done.append)
    assert not gc.isenabled()
    release.set()
    qtbot.waitUntil(lambda: bool(done) and gc.isenabled(), timeout=10_000)
    assert seen == [False] and done == [100_000]
