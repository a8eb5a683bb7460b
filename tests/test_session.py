"""The session: results stamped for one model can never land on another. Reproduces the two ways
the window used to corrupt an analysis (verdicts of model A written into model B; re-clustering an
opened analysis with the previous model's matrix), headless through the core operations and in
the real window, and checks the guards that now refuse them."""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import LOAD_TIMEOUT_MS, open_and_wait
from tiny_models import TinyModel

from glitchview.core import operations
from glitchview.core.errors import GlitchViewError
from glitchview.core.session import Session, StaleResult
from glitchview.core.verify.verdicts import Verdict
from glitchview.gui.main_window import MainWindow


def unverified(session: Session) -> bool:
    v = session.analysis.verdicts
    return v is None or bool((v.verdict == Verdict.UNVERIFIED).all())


@pytest.fixture(scope="module")
def opened_a(tiny_hf: TinyModel) -> operations.Opened:
    return operations.open_model(str(tiny_hf.path))


@pytest.fixture(scope="module")
def opened_b(tiny_untied: TinyModel) -> operations.Opened:
    return operations.open_model(str(tiny_untied.path))


def test_a_result_of_another_session_is_refused(opened_a, opened_b) -> None:
    a, b = opened_a.session(), opened_b.session()
    snapshot = a.snapshot("verify")
    result = operations.verify(snapshot, [5, 6, 7], "fast")
    with pytest.raises(StaleResult, match="another model or session"):
        b.apply(result)
    assert unverified(b) and b.probe is None and b.model is opened_b.model
    a.apply(result)  # its own session takes it
    assert (a.analysis.verdicts.verdict[[5, 6, 7]] != Verdict.UNVERIFIED).all() and a.probe is not None


def test_a_superseded_request_is_refused(opened_a) -> None:
    session = opened_a.session()
    first = operations.colour(session.snapshot("colouring"), "category")
    second = operations.colour(session.snapshot("colouring"), "cluster")
    with pytest.raises(StaleResult, match="superseded"):
        session.apply(first)
    session.apply(second)
    assert session.colour_by == "cluster"


def test_operations_work_on_copies_not_the_live_session(opened_a) -> None:
    session = opened_a.session()
    snapshot = session.snapshot("export")
    session.set_flags([1, 2, 3])
    session.select_ids([4])
    assert not snapshot.analysis.flagged.any() and not snapshot.analysis.selection.any()


def test_an_analysis_never_binds_to_another_model(opened_a, opened_b) -> None:
    with pytest.raises(GlitchViewError, match="does not belong"):
        Session(opened_b.analysis, opened_b.view, model=opened_a.model)


def test_reclustering_an_opened_analysis_uses_its_own_model(opened_a, opened_b, tmp_path) -> None:
    """Corruption 2, headless: an analysis of B read from a file re-clusters on B's matrix."""
    path = tmp_path / "b.gva.npz"
    operations.save(opened_b.session().snapshot("save"), path)
    session = operations.open_analysis(path).session()
    assert session.model is None
    session.apply(operations.recluster(session.snapshot("recluster"), 5))
    assert session.model.fingerprint == opened_b.model.fingerprint != opened_a.model.fingerprint
    assert session.analysis.model.fingerprint == opened_b.model.fingerprint and len(session.analysis.centers) == 5


def test_verification_started_on_a_never_lands_on_b(qtbot, window: MainWindow, tiny_hf: TinyModel,
                                                     tiny_untied: TinyModel) -> None:
    """Corruption 1, in the window: Verify selection on A, then open B before it finishes."""
    open_and_wait(qtbot, window, str(tiny_hf.path))
    session_a = window.session
    session_a.select_ids(np.arange(len(session_a)))
    stale = []
    window.prompt.verify_sel.click()
    assert window.jobs.busy_in("prompt")
    with qtbot.waitSignal(window.hub.analysisChanged, timeout=LOAD_TIMEOUT_MS):
        window.open_model(str(tiny_untied.path))
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=LOAD_TIMEOUT_MS)
    b = window.session
    assert b is not session_a and b.analysis.model.name == str(tiny_untied.path)
    assert unverified(b)
    assert b.probe is None  # the network built for A is not B's
    # even a result that got through the job runner is refused by the session's stamp
    stale.append(operations.verify(session_a.snapshot("verify"), [1, 2], "fast"))
    assert not window.hub.apply(stale[0])
    assert unverified(b)


def test_recluster_after_opening_b_analysis_uses_b(qtbot, window: MainWindow, tiny_hf: TinyModel,
                                                   tiny_untied: TinyModel, opened_b, tmp_path) -> None:
    """Corruption 2, in the window: open A, then File → Open analysis of B, then re-cluster."""
    path = tmp_path / "b.gva.npz"
    operations.save(opened_b.session().snapshot("save"), path)
    open_and_wait(qtbot, window, str(tiny_hf.path))
    with qtbot.waitSignal(window.hub.analysisChanged, timeout=LOAD_TIMEOUT_MS):
        window.open_analysis(str(path))
    assert window.session.model is None  # A's model is not carried over
    with qtbot.waitSignal(window.hub.analysisChanged, timeout=LOAD_TIMEOUT_MS):
        window.recluster(4)
    s = window.session
    assert s.model.fingerprint == opened_b.model.fingerprint
    assert s.analysis.model.name == str(tiny_untied.path) and len(s.analysis.centers) == 4


def test_undo_and_redo_of_flags_and_selection(opened_a) -> None:
    session = opened_a.session()
    heard: list[str] = []
    session.subscribe(heard.append)
    flags_before = session.analysis.flagged.copy()
    session.select_ids([1, 2])
    session.set_flags([9])
    session.select_ids([3], "add")
    assert session.undo() and session.selected_ids().tolist() == [1, 2]
    assert session.undo() and np.array_equal(session.analysis.flagged, flags_before)
    assert session.redo() and session.analysis.flagged[9]
    assert session.redo() and session.selected_ids().tolist() == [1, 2, 3]
    assert not session.redo()
    session.undo()
    session.select_ids([7])  # a new change forgets what could be redone
    assert not session.redo()
    assert {"selection", "flags"} <= set(heard)


def test_ctrl_z_in_the_window_undoes_a_flag(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    open_and_wait(qtbot, window, str(tiny_hf.path))
    window.session.select_ids([4, 5])
    QTest.keyClick(window, Qt.Key.Key_F)  # flag the selection
    assert window.session.analysis.flagged[[4, 5]].all()
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not window.session.analysis.flagged[[4, 5]].any()
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.session.analysis.flagged[[4, 5]].all()


def test_nearest_neighbours_by_cosine(opened_b) -> None:
    """Against an independent brute-force cosine over the whole matrix, in both spaces (untied model)."""
    from glitchview.core.scores.neighbours import cosine_neighbours

    session = opened_b.session()
    session.set_token(40)
    session.apply(operations.nearest(session.snapshot("neighbours"), 5))
    assert set(session.neighbours) == {"input embedding", "unembedding"}
    for space, matrix in (("input embedding", opened_b.model.input_embeddings),
                          ("unembedding", opened_b.model.unembedding)):
        m = matrix.astype(np.float64)
        cos = m @ m[40] / (np.linalg.norm(m, axis=1) * np.linalg.norm(m[40]))
        cos[40] = -np.inf
        expected = np.argsort(-cos)[:5]
        found = session.neighbours[space]
        assert found.ids.tolist() == expected.tolist()
        np.testing.assert_allclose(found.cosine, cos[expected], rtol=1e-5)
    session.set_token(41)
    assert session.neighbours == {}  # a new token drops the old neighbours
    zero = np.zeros((4, 3), dtype=np.float32)
    assert cosine_neighbours(zero, 0).ids.size == 0


def test_neighbours_in_the_window(qtbot, window: MainWindow, tiny_hf: TinyModel) -> None:
    open_and_wait(qtbot, window, str(tiny_hf.path))
    with qtbot.waitSignal(window.hub.neighboursChanged, timeout=60_000):
        window.session.select_ids([30])
    items = [window.detail.neighbours.item(k) for k in range(window.detail.neighbours.count())]
    picked = [int(i.data(0x0100)) for i in items if i.data(0x0100) is not None]
    assert len(picked) == 10 and 30 not in picked
    assert len(window.map.lines.segments) == 1 and len(window.map.lines.segments[0][1]) == 10
    window.detail._pick(items[1])  # click the nearest neighbour: it becomes the selection and the token
    assert window.session.selected_ids().tolist() == [picked[0]] and window.session.token == picked[0]
