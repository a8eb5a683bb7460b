"""Comparing two analyses field by field (numpy arrays included)."""

from __future__ import annotations

import numpy as np

from glitchview.core.analysis import Analysis


def assert_same_analysis(a: Analysis, b: Analysis) -> None:
    assert a.model == b.model and a.settings == b.settings and a.inertia == b.inertia
    assert a.table.pieces == b.table.pieces and a.table.texts == b.table.texts
    assert a.table.token_bytes == b.table.token_bytes
    np.testing.assert_array_equal(a.table.category, b.table.category)
    for name in a.table.flags:
        np.testing.assert_array_equal(a.table.flags[name], b.table.flags[name])
    assert set(a.table.structure) == set(b.table.structure)
    for name in a.table.structure:
        np.testing.assert_array_equal(a.table.structure[name], b.table.structure[name])
    assert a.scores.keys() == b.scores.keys() and a.projections.keys() == b.projections.keys()
    for name in a.scores:
        np.testing.assert_array_equal(a.scores[name], b.scores[name])
    for name in a.projections:
        np.testing.assert_array_equal(a.projections[name], b.projections[name])
    for x, y in ((a.labels, b.labels), (a.centers, b.centers), (a.flagged, b.flagged),
                 (a.reference.ids, b.reference.ids)):
        np.testing.assert_array_equal(x, y)
    assert a.reference.rule == b.reference.rule and a.timings == b.timings and a.view == b.view
    assert (a.selection is None) == (b.selection is None)
    if a.selection is not None:
        np.testing.assert_array_equal(a.selection, b.selection)
    assert (a.verdicts is None) == (b.verdicts is None)
    if a.verdicts is not None:
        np.testing.assert_array_equal(a.verdicts.verdict, b.verdicts.verdict)
        np.testing.assert_array_equal(a.verdicts.max_prob, b.verdicts.max_prob)
        assert a.verdicts.reasons == b.verdicts.reasons and a.verdicts.history == b.verdicts.history
