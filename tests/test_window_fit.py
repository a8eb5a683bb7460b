"""The first minutes in the window: it fits a laptop screen, the suspects are the bright points,
a selection is easy to see, and no view shows stale state (offscreen, real widgets)."""

from __future__ import annotations

import numpy as np
from gui_helpers import open_and_wait
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from tiny_models import TinyModel

from glitchview.core.view.colouring import continuous
from glitchview.gui.main_window import MainWindow
from glitchview.gui.map_view import MAX_LABELS


def luminance(rgb: np.ndarray) -> float:
    return float(0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])


def test_the_suspicious_end_is_the_bright_end() -> None:
    values = np.linspace(0.0, 1.0, 1000)
    for end in ("low", "high"):
        c = continuous("x", values, end)
        colour_of = c.slot_colours[np.repeat(np.arange(len(c.offsets) - 1), np.diff(c.offsets))]
        by_token = np.empty_like(colour_of)
        by_token[c.order] = colour_of
        suspicious, ordinary = (0, -1) if end == "low" else (-1, 0)
        assert luminance(by_token[suspicious]) > 2 * luminance(by_token[ordinary]), end
        last = values[c.order[-1]]  # drawn last, on top: a token of the suspicious extreme
        assert last <= 0.03 if end == "low" else last >= 0.97  # within the extreme one of 64 bins


def test_window_fits_1366_by_768_and_shows_the_map(qtbot, window: MainWindow, tiny_hf: TinyModel, tmp_path) -> None:
    window.resize(1366, 768)
    open_and_wait(qtbot, window, str(tiny_hf.path))
    window.session.set_token(int(np.argmax([len(t) for t in window.session.analysis.table.texts])))
    qtbot.wait(50)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 768, hint
    assert window.width() <= 1366 and window.cancel_button.isVisible() and window.progress.isVisible()
    shot = window.grab()
    shot.save(str(tmp_path / "window-1366.png"))
    image = shot.toImage()
    rect = window.map.geometry()
    origin = window.map.mapTo(window, rect.topLeft() - rect.topLeft())
    colours = {image.pixelColor(origin.x() + x, origin.y() + y).rgb()
               for x in range(20, rect.width() - 20, 7) for y in range(20, rect.height() - 20, 7)}
    assert len(colours) > 20  # the map holds coloured points, not an empty plot


def test_selection_rings_labels_and_a_sensible_zoom(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    s = window.session
    s.select_ids([5])
    assert len(window.map.rings.points) == 1 and window.map.rings.labels == [s.view.escaped_texts[5][:25]]
    assert window.map.rings.zValue() > window.map.centres.zValue()
    s.select_ids(np.arange(MAX_LABELS + 5))
    assert len(window.map.rings.points) == 0  # too many to label: the highlight alone
    s.select_ids([5, 6])
    window.map_area.zoom_to_selection()
    (x0, x1), (y0, y1) = window.map.box.viewRange()
    whole = s.coords.max(axis=0) - s.coords.min(axis=0)
    assert x1 - x0 >= 0.02 * whole[0] and y1 - y0 >= 0.02 * whole[1]


def test_one_selection_for_table_and_map(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    view, model = window.table.view, window.table.model
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    view.selectionModel().select(model.index(0, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect | flags)
    for row in range(1, 13):
        view.selectionModel().select(model.index(row, 0), flags)
    assert window.session.selected_ids().size == 13
    QTest.keyClick(window, Qt.Key.Key_Escape)
    assert window.session.selected_ids().size == 0
    assert not view.selectionModel().selectedRows()  # no row stays highlighted
    with qtbot.waitSignal(window.hub.selectionChanged, timeout=30_000):
        window.map_area.find_token("#3")
    assert window.session.selected_ids().tolist() == [3] and not view.selectionModel().selectedRows()


def test_the_prompt_panel_clears_when_the_token_changes(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    window.session.set_token(10)
    window.prompt.outputs[0].setPlainText("output of token 10")
    window.prompt.verdicts[0].setText("✓ reads normally")
    window.session.set_token(11)
    assert window.prompt.outputs[0].toPlainText() == "" and window.prompt.verdicts[0].text() == ""
    assert "(id 11)" in window.prompt.headers[0].text()


def test_density_mode_and_point_size(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    window.map_area.point_size.setValue(7)
    assert window.map.points.radius == 3
    window.map_area.density.setChecked(True)
    image = window.map.grab().toImage()
    greys = sum(1 for x in range(0, image.width(), 3) for y in range(0, image.height(), 3)
                if (c := QColor(image.pixel(x, y))).red() == c.green() == c.blue() and c.red() > 60)
    assert greys > 10  # the density is drawn in grey levels


def test_the_map_appears_before_the_scores(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    """First map in seconds: every token on the PCA map as soon as the matrix is read, then the
    analysis replaces it."""
    early: list[int] = []
    window.map_area.earlyMapShown.connect(lambda: early.append(window.map.points.count))
    order: list[str] = []
    window.map_area.earlyMapShown.connect(lambda: order.append("early map"))
    window.hub.analysisChanged.connect(lambda: order.append("analysis"))
    open_and_wait(qtbot, window, str(tiny_hf.path))
    assert order == ["early map", "analysis"]
    assert early == [tiny_hf.vocab_size] and window.map.points.count == tiny_hf.vocab_size


def test_a_model_analysed_before_opens_as_it_was_left(qtbot, window: MainWindow, tiny_untied: TinyModel) -> None:
    """The analysis cache: reopening restores the last analysis with the user's flags, says when it
    was computed, and Re-run computes it afresh."""
    open_and_wait(qtbot, window, str(tiny_untied.path))
    first = window.session.analysis
    window.session.set_flags([3, 4])
    window.autosaver.save_now()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=30_000)

    again = MainWindow()
    qtbot.addWidget(again)
    open_and_wait(qtbot, again, str(tiny_untied.path), fresh=False)
    restored = again.session.analysis
    assert np.flatnonzero(restored.flagged).tolist() == [3, 4]
    np.testing.assert_array_equal(restored.labels, first.labels)
    assert "restored its analysis computed" in again.status.text() and again.job_status.rerun_button.isVisibleTo(again)
    with qtbot.waitSignal(again.hub.analysisChanged, timeout=120_000):
        again.job_status.rerun_button.click()
    assert not again.session.analysis.flagged.any() and not again.job_status.rerun_button.isVisibleTo(again)
    assert "tokens analysed" in again.status.text()


def test_prompt_output_wraps_at_spaces_and_the_time_limit_is_settable(qtbot, window: MainWindow) -> None:
    window.prompt.time_limit.setValue(7)
    assert window.prompt.settings().time_limit_s == 7.0
    window.prompt.request = 1
    for piece in ("The", " weather", " is", " nice", " today"):
        window.prompt._append_token(1, 0, piece, 0.9)
    assert window.prompt.outputs[0].toPlainText() == "The weather is nice today"
    assert "pre-wrap" in window.prompt.outputs[0].toHtml()  # spaces kept as spaces: wrapping happens at them
