"""Benchmark of the window on Gemma-3-270M (262,144 points), offscreen at 1600 x 1000.

Prints: event-loop latency (a 10 ms timer's largest and 99th-percentile gap) while the full
analysis runs on the workers, against the same probe on an idle loop; full redraw time of the
map for pan, zoom, recolour and selection highlight, against pyqtgraph's ScatterPlotItem with
shared brushes drawing the same points (the usual fast path); table sort time on all rows, and
against a QSortFilterProxyModel sorting the same model on a 32,768-row slice; the largest event-loop
gap during sort, find, filter and selection, against the same work done on the GUI thread.
Run: `python bench/bench_gui.py [MODEL]` (default gemma3; needs its package, see `make bench`), or
`python bench/bench_gui.py --synthetic 8b` for a Llama-3-8B-shaped checkpoint (128,256 x 4,096, bf16,
sharded, written to a temporary folder by `synthetic_checkpoint.py`)."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def model_argument() -> str:
    """The model to open: a name or path, or a synthetic checkpoint of a real shape written now."""
    if sys.argv[1:2] == ["--synthetic"]:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from synthetic_checkpoint import SHAPES, write_checkpoint

        folder = tempfile.mkdtemp(prefix=f"glitchview-{sys.argv[2]}-")
        print(f"writing the {sys.argv[2]}-shaped checkpoint into {folder} (not timed)…", file=sys.stderr)
        write_checkpoint(Path(folder), *SHAPES[sys.argv[2]])
        return folder
    return sys.argv[1] if len(sys.argv) > 1 else "gemma3"


def main() -> None:
    model_name = model_argument()
    os.environ.setdefault("GLITCHVIEW_CACHE_DIR", os.path.join(tempfile.gettempdir(), "glitchview-bench-cache"))
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtCore import QElapsedTimer, QSortFilterProxyModel, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from glitchview.core.pipeline import open_model
    from glitchview.gui.app import create_application
    from glitchview.gui.main_window import MainWindow

    app = create_application()
    print(f"warming the model cache for {model_name} (not timed)…", file=sys.stderr)
    open_model(model_name)

    def probe(seconds: float | None, until=None) -> list[float]:
        gaps: list[float] = []
        clock = QElapsedTimer()
        clock.start()
        last = [clock.elapsed()]

        def tick() -> None:
            now = clock.elapsed()
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer(interval=10)
        timer.timeout.connect(tick)
        timer.start()
        start = time.monotonic()
        while (until is not None and not until()) or (seconds is not None and time.monotonic() - start < seconds):
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        return gaps

    window = MainWindow()
    window.resize(1600, 1000)
    window.show()
    idle = probe(3.0)
    window.open_model(model_name, fresh=True)  # the full analysis, not the cached one
    busy = probe(None, until=lambda: window.session is not None and not window.jobs.busy)
    n = len(window.session)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import machine

    print(f"\n## Window benchmark: {model_name}, {n:,} points, 1600 x 1000 offscreen\n\nmachine: {machine()}, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| event loop (10 ms timer) | max gap ms | p99 gap ms |\n|---|---:|---:|")
    for label, gaps in (("idle", idle), ("during the full analysis", busy)):
        print(f"| {label} | {max(gaps):.0f} | {np.percentile(gaps, 99):.0f} |")

    view = window.map
    for _ in range(3):
        app.processEvents()

    def frame_ms(action, repeats: int = 8) -> float:
        times = []
        for _ in range(repeats):
            action()
            start = time.perf_counter()
            view.viewport().grab()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    state = window.session
    colourings = [state.colourings[c] for c in ("norm", "cluster", "cluster_distance")]
    sel = np.random.default_rng(0).choice(n, 10_000, replace=False)
    cycle = iter(range(10**6))
    ours = {
        "redraw": frame_ms(lambda: None),
        "pan": frame_ms(lambda: window.map_area.pan(0.05, 0.0)),
        "zoom": frame_ms(lambda: view.box.scaleBy((0.9, 0.9))),
        "recolour (incl. regrouping)": frame_ms(lambda: view.set_colouring(colourings[next(cycle) % 3])),
        "selection highlight (10k)": frame_ms(lambda: state.select_ids(sel)),
    }
    state.clear_selection()
    view.fit_all()
    base = pg.PlotWidget()
    base.resize(view.size())
    base.show()
    colours = state.colourings[state.colour_by]
    brushes = [pg.mkBrush(*map(int, c)) for c in colours.slot_colours]
    slot = np.empty(n, dtype=np.int64)
    for b in range(len(colours.offsets) - 1):
        slot[colours.order[colours.offsets[b]:colours.offsets[b + 1]]] = b
    scatter = pg.ScatterPlotItem(pxMode=True, size=3, pen=None)
    base.addItem(scatter)
    start = time.perf_counter()
    scatter.setData(pos=state.coords, brush=[brushes[s] for s in slot])
    set_data_ms = (time.perf_counter() - start) * 1000
    base.getPlotItem().getViewBox().autoRange()
    app.processEvents()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        base.viewport().grab()
        times.append((time.perf_counter() - start) * 1000)
    base_ms = statistics.median(times)
    print("\n| map frame (median of 8) | ms | fps | vs ScatterPlotItem redraw |\n|---|---:|---:|---:|")
    for label, ms in ours.items():
        print(f"| {label} | {ms:.1f} | {1000 / ms:.0f} | {base_ms / ms:.1f}x faster |")
    print(f"| baseline: ScatterPlotItem, shared brushes, redraw | {base_ms:.1f} | {1000 / base_ms:.0f} | 1.0x |")
    print(f"| baseline: ScatterPlotItem setData (recolour) | {set_data_ms:.0f} | | |")

    model = window.table.model
    col = model.columns.index("cluster_distance")
    timings = []
    for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder) * 2:
        start = time.perf_counter()
        model.sort(col, order)
        timings.append((time.perf_counter() - start) * 1000)
    full_sort = statistics.median(timings)
    model.rows = np.arange(min(n, 32_768))  # the slice both sorts work on
    start = time.perf_counter()
    model.sort(col, Qt.SortOrder.AscendingOrder)
    ours_slice = (time.perf_counter() - start) * 1000
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(model)
    start = time.perf_counter()
    proxy.sort(col, Qt.SortOrder.AscendingOrder)
    proxy_slice = (time.perf_counter() - start) * 1000
    print("\n| table sort by an indicator | ms |\n|---|---:|")
    print(f"| numpy index sort, all {n:,} rows | {full_sort:.1f} |")
    print(f"| numpy index sort, 32,768 rows | {ours_slice:.1f} |")
    print(f"| QSortFilterProxyModel sort, 32,768 rows | {proxy_slice:.0f} ({proxy_slice / ours_slice:.0f}x slower) |")
    proxy.setSourceModel(None)  # the baseline proxy must not re-sort 262k rows on every later change
    model.set_rows(np.arange(n))

    # interactions: the largest event-loop gap from the click until the result is shown, against
    # the same work done on the GUI thread (the earlier design) in the same run
    from glitchview.core.view.find import find_tokens, match_texts

    texts = state.view.escaped_texts
    token_col = model.columns.index("token")

    def sorted_by_text() -> None:
        sorted(range(n), key=texts.__getitem__)

    table = window.table
    interactions = [
        ("sort by token text", lambda: model.sort(token_col, Qt.SortOrder.AscendingOrder), sorted_by_text),
        ("sort by an indicator", lambda: model.sort(col, Qt.SortOrder.DescendingOrder), None),
        ("find /unused/", lambda: window.map_area.find_token("/unused/"), lambda: find_tokens(texts, "/unused/")),
        ("table filter 'ing'", lambda: (table.search.setText("ing"), table.apply_filters()),
         lambda: match_texts(texts, "ing", False, np.arange(n))),
        ("select 10,000 tokens", lambda: state.select_ids(sel), None),
    ]
    print("\n| interaction | largest event-loop gap ms (ours) | the same work on the GUI thread ms |\n|---|---:|---:|")
    for label, action, on_gui_thread in interactions:
        gaps = probe(0.3)  # settle
        clock = QElapsedTimer()
        clock.start()
        QTimer.singleShot(0, action)
        gaps = probe(None, until=lambda: clock.elapsed() > 200 and not window.jobs.busy)
        baseline = ""
        if on_gui_thread is not None:
            start = time.perf_counter()
            on_gui_thread()
            baseline = f"{(time.perf_counter() - start) * 1000:.0f}"
        print(f"| {label} | {max(gaps):.0f} | {baseline} |")
    window.close()
    QApplication.processEvents()


if __name__ == "__main__":
    main()
