"""Shared fixtures: a private cache folder per test session, tiny models in the three forms,
and one real scan of the default demo model (SmolLM2) reused by the end-to-end tests."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from tiny_models import TinyModel, write_gguf, write_hf_folder  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session converts and caches into its own folder, and keeps its Qt settings
    (recent models), logs and autosaves in its own folders: never the user's."""
    folder = tmp_path_factory.mktemp("glitchview-cache")
    os.environ["GLITCHVIEW_CACHE_DIR"] = str(folder)
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    os.environ["GLITCHVIEW_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    return folder


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return write_hf_folder(tmp_path_factory.mktemp("tiny") / "tied")


@pytest.fixture(scope="session")
def tiny_untied(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return write_hf_folder(tmp_path_factory.mktemp("tiny") / "untied", tied=False, seed=1)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return write_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="session")
def smollm2_scan():
    """(LoadedModel, Analysis) of the real SmolLM2 demo model, k=20."""
    from glitchview.core.pipeline import scan

    return scan("smollm2")


@pytest.fixture
def window(qtbot):
    """The real main window, shown offscreen."""
    from glitchview.gui.app import create_application
    from glitchview.gui.main_window import MainWindow

    create_application()
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win
