"""The desktop window, driven offscreen through its real widgets (pytest-qt): analysis on tiny and
real models, map selection by API and by synthesised mouse drags, the linked table, flags and
export, failing and cancelled jobs, saving and reopening an analysis."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import open_and_wait, wait_job
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from tiny_models import TinyModel

from glitchview.core.scores.indicators import INDICATORS
from glitchview.core.verify.verdicts import GLITCH_VERDICTS, Verdict
from glitchview.gui.main_window import MainWindow


def drawn_points(win: MainWindow) -> int:
    return win.map.points.count


def _send(widget, kind: QEvent.Type, pos: QPoint, buttons, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(widget, event)


def drag(win: MainWindow, path: list[QPoint], modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """A real left-button drag through the map's viewport, point by point."""
    viewport = win.map.viewport()
    held = Qt.MouseButton.LeftButton
    _send(viewport, QEvent.Type.MouseButtonPress, path[0], held, modifiers)
    for pos in path[1:]:
        QTest.qWait(15)  # pyqtgraph drops mouse moves that come faster than 100 per second, as a hand's do not
        _send(viewport, QEvent.Type.MouseMove, pos, held, modifiers)
        QApplication.processEvents()
    _send(viewport, QEvent.Type.MouseButtonRelease, path[-1], Qt.MouseButton.NoButton, modifiers)
    QApplication.processEvents()


def to_view(win: MainWindow, pos: QPoint) -> tuple[float, float]:
    p = win.map.box.mapSceneToView(win.map.mapToScene(pos))
    return p.x(), p.y()


def inside_triangle(coords: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Independent check: a point is inside a triangle when the three edge cross products agree."""
    signs = []
    for k in range(3):
        (ax, ay), (bx, by) = tri[k], tri[(k + 1) % 3]
        signs.append((bx - ax) * (coords[:, 1] - ay) - (by - ay) * (coords[:, 0] - ax))
    s = np.stack(signs)
    return (s >= 0).all(0) | (s <= 0).all(0)


def inside_polygon_winding(coords: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Independent check for a simple polygon: a point is inside when the polygon winds around it
    (winding number, not the even-odd crossing rule GlitchView uses)."""
    winding = np.zeros(len(coords), dtype=np.int64)
    x, y = coords[:, 0], coords[:, 1]
    for (ax, ay), (bx, by) in zip(polygon, np.roll(polygon, -1, axis=0)):
        side = (bx - ax) * (y - ay) - (by - ay) * (x - ax)
        winding += ((ay <= y) & (by > y) & (side > 0)).astype(np.int64)
        winding -= ((ay > y) & (by <= y) & (side < 0)).astype(np.int64)
    return winding != 0


def test_tiny_model_one_point_per_token_and_table(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    assert drawn_points(window) == tiny_hf.vocab_size
    assert window.table.model.rowCount() == tiny_hf.vocab_size
    assert window.session.coords.shape == (tiny_hf.vocab_size, 2)
    token = 17
    x, y = window.session.coords[token]
    sx, sy = window.map.pixel_size()
    assert window.map.index.nearest(x + sx, y, sx, sy, 6.0) in {token} | set(
        np.flatnonzero(np.hypot((window.session.coords[:, 0] - x) / sx, (window.session.coords[:, 1] - y) / sy) < 2))
    assert "id 17" in window.detail.tooltip(token)


def test_rectangle_and_lasso_by_api_and_by_mouse(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    coords = window.session.coords
    (x0, x1), (y0, y1) = np.percentile(coords[:, 0], [20, 70]), np.percentile(coords[:, 1], [10, 60])
    window.session.select_rect(x0, y0, x1, y1)
    expected = (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
    np.testing.assert_array_equal(window.session.selection, expected)
    window.table.only_selection.setChecked(True)
    assert sorted(window.table.model.rows.tolist()) == np.flatnonzero(expected).tolist()
    window.table.only_selection.setChecked(False)

    tri = np.array([[coords[:, 0].min(), coords[:, 1].min()], [coords[:, 0].max(), coords[:, 1].min()],
                    [np.median(coords[:, 0]), coords[:, 1].max()]])
    window.session.select_polygon(tri)
    np.testing.assert_array_equal(window.session.selection, inside_triangle(coords, tri))

    # the same through the mouse: a rectangle drag, then a lasso drag that removes (Ctrl)
    rect = window.map.viewport().rect()
    a, b = QPoint(int(rect.width() * 0.3), int(rect.height() * 0.3)), QPoint(int(rect.width() * 0.7), int(rect.height() * 0.75))
    window.map_area.set_tool("rect")
    drag(window, [QPoint(int(a.x() + (b.x() - a.x()) * t), int(a.y() + (b.y() - a.y()) * t))
                  for t in np.linspace(0, 1, 12)])
    (vx0, vy0), (vx1, vy1) = to_view(window, a), to_view(window, b)
    expected = ((coords[:, 0] >= min(vx0, vx1)) & (coords[:, 0] <= max(vx0, vx1)) &
                (coords[:, 1] >= min(vy0, vy1)) & (coords[:, 1] <= max(vy0, vy1)))
    assert expected.sum() > 5
    np.testing.assert_array_equal(window.session.selection, expected)

    window.map_area.set_tool("lasso")
    corners = [QPoint(int(rect.width() * 0.2), int(rect.height() * 0.9)), QPoint(int(rect.width() * 0.8), int(rect.height() * 0.9)),
               QPoint(int(rect.width() * 0.5), int(rect.height() * 0.1))]
    lasso = []
    for k in range(3):  # walk each edge in small steps, as a hand would
        p, q = corners[k], corners[(k + 1) % 3]
        lasso += [QPoint(int(p.x() + (q.x() - p.x()) * t), int(p.y() + (q.y() - p.y()) * t)) for t in np.linspace(0, 1, 8)]
    before = window.session.selection.copy()
    drawn: list[np.ndarray] = []
    window.map.box.shapeDrawn.connect(lambda tool, points, modifiers: drawn.append(points))
    drag(window, lasso, Qt.KeyboardModifier.ControlModifier)
    path_view = np.array([to_view(window, p) for p in lasso])
    assert len(drawn) == 1
    got = drawn[0][np.r_[True, np.any(np.diff(drawn[0], axis=0) != 0, axis=1)]]  # repeated points add nothing
    want = path_view[np.r_[True, np.any(np.diff(path_view, axis=0) != 0, axis=1)]]
    assert np.allclose(got, want)  # the hand-drawn path, point for point
    np.testing.assert_array_equal(window.session.selection, before & ~inside_polygon_winding(coords, path_view))

    window.map_area.set_tool("pan")
    window.session.select_ids([5, 9])
    qtbot.keyClick(window.map, Qt.Key.Key_Escape)
    assert not window.session.selection.any()


def test_sort_filter_flag_export(qtbot, window: MainWindow, tiny_hf: TinyModel, tmp_path: Path) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    a, model = window.session.analysis, window.table.model
    for name in ("norm", "cluster_distance"):
        col = model.columns.index(name)
        window.table.view.sortByColumn(col, Qt.SortOrder.AscendingOrder)
        assert model.token_id(0) == int(np.nanargmin(a.scores[name]))
        window.table.view.sortByColumn(col, Qt.SortOrder.DescendingOrder)
        assert model.token_id(0) == int(np.nanargmax(a.scores[name]))

    window.table.search.setText(r"^ (the|and)$")
    window.table.use_regex.setChecked(True)
    with qtbot.waitSignal(window.table.filtered, timeout=30_000):
        window.table.apply_filters()
    assert sorted(a.table.texts[i] for i in model.rows) == [" and", " the"]
    window.table.search.setText("(unclosed")
    window.table.apply_filters()
    assert "bad regex" in window.table.error.text()
    window.table.search.clear()
    window.table.use_regex.setChecked(False)
    window.table.apply_filters()
    assert model.rowCount() == len(a)

    eq = a.table.texts.index("=")
    flag_col = model.columns.index("flagged")
    row = int(np.flatnonzero(model.rows == eq)[0])
    assert model.setData(model.index(row, flag_col), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    window.settings_panel.top_n.setValue(5)
    window.settings_panel.flag_top.click()
    expected = {eq, *a.top(window.session.indicator, 5).tolist()}
    assert set(np.flatnonzero(a.flagged).tolist()) == expected

    out = tmp_path / "flagged.csv"
    window.export("flagged", str(out))
    wait_job(qtbot, window)
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {int(r["id"]) for r in rows} == expected
    assert list(rows[0]) == ["id", "piece", "text", "bytes_hex", "category", "flags", "cluster", *INDICATORS,
                             "rank", "ranked_by", "flagged", "verdict", "max_prob", "taxonomy", "reasons"]
    by_id = {int(r["id"]): r for r in rows}
    assert by_id[eq]["text"] == "'=" and by_id[eq]["bytes_hex"] == "0x3d"
    assert all(r["flagged"] == "1" for r in rows)


def test_failed_job_keeps_window_usable_and_cancel(qtbot, window: MainWindow, tiny_hf: TinyModel, tmp_path: Path) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 20)
    with qtbot.waitSignal(window.jobs.failed, timeout=60_000):
        window.open_model(str(bad))
    assert "broken.gguf" in window.last_error
    assert window.session is not None and drawn_points(window) == tiny_hf.vocab_size
    window.session.select_ids([1, 2, 3])
    assert window.session.selection.sum() == 3

    window.request_projection("umap")  # a long job in a child process
    qtbot.wait(1500)
    assert window.jobs.busy
    start = time.monotonic()
    with qtbot.waitSignal(window.jobs.cancelled, timeout=5_000):
        window.cancel_button.click()
    assert time.monotonic() - start < 1.0
    assert "umap" not in window.session.indexes and window.session.projection == "pca"


def test_save_and_reopen_restores_selection_flags_colouring(qtbot, window: MainWindow, tiny_hf: TinyModel,
                                                            tmp_path: Path) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    window.session.select_ids([3, 4, 50])
    window.session.set_flags([7, 8])
    window.request_colouring("cluster")
    path = tmp_path / "saved.gva.npz"
    window.save_to(str(path))
    wait_job(qtbot, window)
    assert path.exists()

    other = MainWindow()
    qtbot.addWidget(other)
    with qtbot.waitSignal(other.hub.analysisChanged, timeout=60_000):
        other.open_analysis(str(path))
    assert other.session.selected_ids().tolist() == [3, 4, 50]
    assert np.flatnonzero(other.session.analysis.flagged).tolist() == [7, 8]
    assert other.session.colour_by == "cluster" and other.map_area.colour_by.currentText() == "cluster"
    np.testing.assert_array_equal(other.session.coords, window.session.coords)
    assert drawn_points(other) == tiny_hf.vocab_size


def test_find_token_and_recluster(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    with qtbot.waitSignal(window.hub.selectionChanged, timeout=30_000):
        window.map_area.find_token("#12")
    assert window.session.selected_ids().tolist() == [12]
    with qtbot.waitSignal(window.hub.selectionChanged, timeout=30_000):
        window.map_area.find_token(" the")
    assert window.session.analysis.table.texts.index(" the") in window.session.selected_ids().tolist()
    window.session.set_flags([5])
    window.session.select_ids([3, 4])
    coords = window.session.coords.copy()
    with qtbot.waitSignal(window.hub.analysisChanged, timeout=60_000):
        window.recluster(6)
    assert len(window.session.analysis.centers) == 6 and window.session.analysis.flagged[5]
    assert window.session.selected_ids().tolist() == [3, 4]
    np.testing.assert_array_equal(window.session.coords, coords)  # the map is kept, not recomputed


@pytest.mark.slow
def test_real_smollm2_window(qtbot, window: MainWindow) -> None:
    open_and_wait(qtbot, window, "smollm2")
    assert drawn_points(window) == 49_152 and window.table.model.rowCount() == 49_152
    rank_first = window.table.model.token_id(0)
    assert window.session.rank()[rank_first] == 1


@pytest.mark.slow
def test_prompt_panel_streams_runs_control_and_verifies(qtbot, window: MainWindow, tmp_path: Path) -> None:
    open_and_wait(qtbot, window, "smollm2")
    a = window.session.analysis
    glitch = 36743  # 'PlaneProtection': never trained in SmolLM2
    window.session.select_ids([glitch])
    assert window.prompt.token_id == glitch
    window.prompt.template.setCurrentText("breakfast")
    window.prompt.max_tokens.setValue(8)
    streamed: list[tuple[int, str, float]] = []
    window.prompt.stream.token.connect(lambda _request, run, piece, p: streamed.append((run, piece, p)))
    with qtbot.waitSignal(window.prompt.finished, timeout=120_000):
        window.prompt.run_button.click()
    record = window.prompt.last_result
    assert record["runs"][0]["token"] == glitch and record["runs"][1]["token"] != glitch
    control_text = a.table.texts[record["runs"][1]["token"]]
    assert "control run" in window.prompt.headers[1].text() and control_text.strip() in window.prompt.headers[1].text()
    assert {run for run, _, _ in streamed} <= {0, 1} and any(run == 1 for run, _, _ in streamed)
    assert window.prompt.outputs[1].toPlainText().strip()  # the control run's text appeared
    assert window.prompt.verdicts[0].text() and a.verdicts.history_for(glitch)

    window.prompt.max_tokens.setValue(1000)
    streamed.clear()
    window.prompt.run_button.click()
    qtbot.waitUntil(lambda: len(streamed) >= 3, timeout=60_000)
    start = time.monotonic()
    with qtbot.waitSignal(window.prompt.finished, timeout=5_000):
        window.prompt.stop_button.click()
    assert time.monotonic() - start < 2.0
    assert window.prompt.last_result["runs"][-1]["stopped"] == "cancelled"
    assert len(streamed) < 100 and "stopped" in window.prompt.verdicts[len(window.prompt.last_result["runs"]) - 1].text()

    the = a.table.texts.index(" the")
    window.session.select_ids([glitch, the])
    window.prompt.mode.setCurrentText("fast")
    with qtbot.waitSignal(window.hub.verdictsChanged, timeout=120_000):
        window.prompt.verify_sel.click()
    assert a.verdicts.verdict[glitch] in GLITCH_VERDICTS and a.verdicts.verdict[the] == Verdict.NORMAL
    status = window.prompt.status.toolTip()  # the whole message; the label shows what fits in two lines
    assert status.startswith("Verified 2 tokens: ") and "; torch, " in status and " on cpu; " in status  # engine named
    assert window.prompt.status.text().rstrip("…") == status[:len(window.prompt.status.text().rstrip("…"))]
    model = window.table.model
    row = int(np.flatnonzero(model.rows == glitch)[0])
    assert model.data(model.index(row, model.columns.index("verdict"))) in ("glitch", "strong_glitch")
    window.session.set_flags([glitch])
    out = tmp_path / "verified.csv"
    window.export("flagged", str(out))
    wait_job(qtbot, window)
    with out.open(encoding="utf-8", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["verdict"] in ("glitch", "strong_glitch") and float(row["max_prob"]) < 0.01 and row["taxonomy"]
    window.quality.sample = np.array([the])
    window.quality.refresh()
    assert window.quality.table.rowCount() == len(a.scores)


def test_encoder_model_disables_prompting(qtbot, window: MainWindow) -> None:
    open_and_wait(qtbot, window, "minilm")
    assert not window.prompt.run_button.isEnabled() and "cannot generate" in window.prompt.status.text()


def test_window_and_command_line_start_on_the_same_engine(qtbot, window: MainWindow) -> None:
    from glitchview.cli.arguments import build_parser
    from glitchview.cli.verify import engine_choice

    args = build_parser().parse_args(["verify", "smollm2"])
    panel = window.settings_panel
    assert panel.device.currentText() == args.device == "auto"
    panel.apply_engine.click()  # the window's settings as they start
    assert window.hub.engine == engine_choice(args)


def test_engine_setting_reaches_the_session(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    panel = window.settings_panel
    panel.engine.setCurrentText("server")
    assert panel.server_url.isEnabled() and not panel.device.isEnabled()
    panel.apply_engine.click()
    assert "needs the server's URL" in panel.engine_status.text() and window.session.engine.engine == "torch"
    panel.server_url.setText("http://127.0.0.1:9/v1")
    panel.api_key_env.setText("MY_KEY_VAR")
    panel.apply_engine.click()
    assert (window.session.engine.engine, window.session.engine.server) == ("server", "http://127.0.0.1:9/v1")
    assert window.session.engine.api_key_env == "MY_KEY_VAR" and window.session.probe is None
    assert not window.session.engine.api_key_keyring
    panel.api_key_env.setText("")
    panel.api_key_keyring.setChecked(True)
    panel.apply_engine.click()
    assert window.session.engine.api_key_keyring and not window.session.engine.api_key_env
    open_and_wait(qtbot, window, str(tiny_hf.path))  # a new session keeps the window's engine
    assert window.session.engine.engine == "server"
