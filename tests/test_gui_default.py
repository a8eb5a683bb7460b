"""The window opens on the recommended score: the indicator, the map colouring and the table order
follow DEFAULT_INDICATOR (glitch_score), with known-unused tokens ranked after the rest."""

from __future__ import annotations

from gui_helpers import open_and_wait
from tiny_models import TinyModel

from glitchview.core.analysis import DEFAULT_INDICATOR


def test_the_window_opens_on_glitch_score(qtbot, window, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    assert DEFAULT_INDICATOR == "glitch_score"
    assert window.state.indicator == "glitch_score" and window.state.colour_by == "glitch_score"
    a = window.state.analysis
    assert a.settings["indicator"] == "glitch_score"
    assert a.known_unused.any()  # the tiny model's never-in-UTF-8 bytes
    assert not a.known_unused[a.top("glitch_score", int((~a.known_unused).sum()))].any()
