"""The research outputs in the window: File → Count corpus tokens (columns, filter, log colouring),
Compare with… (delta columns, filters, colouring) and Export report, driven through the real
window on a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gui_helpers import open_and_wait, wait_job
from test_compare import RESET, reset_rows, swap_two_ids
from test_corpus import LICENCES
from tiny_models import TinyModel

from glitchview.core.view.research import COMPARE_COLOURING, NEVER_SEEN, ONLY_B
from glitchview.gui import research_actions
from glitchview.gui.main_window import MainWindow


def menu_texts(window: MainWindow) -> list[str]:
    return [a.text() for m in window.menuBar().findChildren(type(window.menuBar().actions()[0].menu()))
            for a in m.actions()]


def show_filter(window: MainWindow, name: str) -> np.ndarray:
    window.table.flag.setCurrentText(name)
    window.table.apply_filters()
    return window.table.model.rows.copy()


def test_corpus_compare_and_report_from_the_window(qtbot, window: MainWindow, tiny_hf: TinyModel,
                                                   tmp_path: Path) -> None:
    assert {"Count corpus tokens…", "Compare with…", "Export report…"} <= set(menu_texts(window))
    open_and_wait(qtbot, window, str(tiny_hf.path))

    research_actions.count_corpus(window, [Path(p) for p in LICENCES])
    wait_job(qtbot, window)
    a = window.session.analysis
    assert a.corpus is not None and "corpus_rarity" in a.scores
    model = window.table.model
    assert {"corpus count", "per million"} <= set(model.columns)
    never = np.flatnonzero(a.corpus.counts == 0)
    assert sorted(show_filter(window, NEVER_SEEN).tolist()) == never.tolist()
    row = 0
    token = model.token_id(row)
    assert model.data(model.index(row, model.columns.index("corpus count"))) == "0"
    window.request_colouring("corpus_rarity")
    wait_job(qtbot, window)
    assert window.session.colour_by == "corpus_rarity" and token in never

    other = reset_rows(tiny_hf.path, tmp_path / "reset", RESET)
    research_actions.compare_with(window, str(other))
    wait_job(qtbot, window)
    assert window.session.analysis.comparison is not None
    assert "Δ norm" in model.columns and "verdict B" in model.columns
    only_b = show_filter(window, ONLY_B)
    assert len(only_b) and set(only_b.tolist()) <= set(RESET)
    window.request_colouring(COMPARE_COLOURING)
    wait_job(qtbot, window)
    assert window.session.colour_by == COMPARE_COLOURING

    # another vocabulary: the job fails with the count of differing ids, the window stays as it was
    research_actions.compare_with(window, str(swap_two_ids(other, tmp_path / "swapped")))
    wait_job(qtbot, window)
    assert "2 of 320 ids hold different tokens" in window.last_error
    assert window.session.analysis.comparison is not None  # the earlier comparison is kept
    window.last_error = ""

    research_actions.export_report(window, str(tmp_path / "report"))
    wait_job(qtbot, window)
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "corpus" in html
    assert window.last_error == ""  # no job failed
