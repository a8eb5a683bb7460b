"""The window opens on the recommended score: the indicator, the map colouring and the table order
follow DEFAULT_INDICATOR (glitch_score), with known-unused tokens ranked after the rest."""

from __future__ import annotations

from gui_helpers import open_and_wait
from tiny_models import TinyModel

from glitchview.core.analysis import DEFAULT_INDICATOR


def test_the_window_opens_on_glitch_score(qtbot, window, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    assert DEFAULT_INDICATOR == "glitch_score"
    assert window.session.indicator == "glitch_score" and window.session.colour_by == "glitch_score"
    a = window.session.analysis
    assert a.settings["indicator"] == "glitch_score"
    assert a.known_unused.any()  # the tiny model's never-in-UTF-8 bytes
    assert not a.known_unused[a.top("glitch_score", int((~a.known_unused).sum()))].any()
    first_row = window.table.model.token_id(0)
    assert first_row == int(a.top("glitch_score", 1)[0]) and not a.known_unused[first_row]
    assert window.settings_panel.indicator.itemText(0) == "glitch_score"  # the recommended score first


def test_the_quality_panel_counts_every_token_of_the_top_k(qtbot, window, tiny_hf: TinyModel) -> None:
    """A partly verified top k is shown as such: P@k over every token, with the verified, uncertain
    and unverified counts beside it (the same table as `glitchview verify`)."""
    import numpy as np

    from glitchview.core import operations
    from glitchview.core.verify.verdicts import Verdict

    open_and_wait(qtbot, window, str(tiny_hf.path))
    s = window.session
    top = s.analysis.top("glitch_score", 50)
    result = operations.verify(s.snapshot("verify"), top[:10], "full")
    s.apply(result)
    window.quality.refresh()
    columns = [window.quality.table.horizontalHeaderItem(c).text() for c in range(window.quality.table.columnCount())]
    assert {"P@50", "verified@50", "uncertain@50", "unverified@50", "ROC-AUC"} <= set(columns)
    row = [window.quality.table.item(0, c).text() for c in range(len(columns))]
    assert row[0] == "glitch_score"
    verdicts = s.analysis.verdicts.verdict[top]
    glitch = int(np.isin(verdicts, (Verdict.GLITCH, Verdict.STRONG_GLITCH)).sum())
    assert float(row[columns.index("P@50")]) == round(glitch / 50, 2)
    assert int(row[columns.index("unverified@50")]) == 40
    assert "glitch_score" in window.quality.legend.text()  # the legend sits outside the plot
