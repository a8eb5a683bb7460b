"""The learning detector on a real (tiny) model: it learns the planted under-trained rows from verdicts,
measures itself out-of-fold, and picks tokens to verify that were not verified before."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import TinyModel

from glitchview.core.model.token_structure import add_token_structure, fragment_likeness
from glitchview.core.pipeline import ScanSettings, scan
from glitchview.core.scores.detector import fit_detector, learn, pick_to_verify, token_features
from glitchview.core.verify.verdicts import Verdict


@pytest.fixture(scope="module")
def analysis(tiny_hf: TinyModel):
    model, analysis = scan(str(tiny_hf.path), ScanSettings(clusters=4))
    assert not analysis.table.structure  # opening a model does not compute it: the detector adds it
    add_token_structure(analysis.table, model.tokenizer)
    return analysis


def test_the_detector_learns_the_planted_rows(analysis, tiny_hf: TinyModel) -> None:
    verdicts = np.full(len(analysis), Verdict.NORMAL, dtype=np.int8)
    verdicts[list(tiny_hf.planted)] = Verdict.GLITCH
    verdicts[7] = Verdict.UNCERTAIN  # not a label: left out of the fit
    result = fit_detector(analysis, verdicts, k=len(tiny_hf.planted), folds=3)
    assert result.n_train == len(analysis) - 1 and result.n_glitch == len(tiny_hf.planted)
    top = set(np.argsort(-result.scores)[: len(tiny_hf.planted)].tolist())
    assert len(top & set(tiny_hf.planted)) >= len(tiny_hf.planted) - 1
    assert "detector (out-of-fold)" in result.held_out and set(analysis.scores) <= set(result.held_out)
    assert result.held_out["detector (out-of-fold)"] >= 0.5
    features, names = token_features(analysis)
    assert features.shape == (len(analysis), len(names)) and np.isfinite(features).all()


def test_too_few_labels_is_a_clear_error(analysis) -> None:
    with pytest.raises(ValueError, match="verify more"):
        fit_detector(analysis, np.full(len(analysis), Verdict.NORMAL, dtype=np.int8))


def test_tokens_to_verify_are_new_and_informative(analysis) -> None:
    already = np.zeros(len(analysis), dtype=bool)
    already[analysis.top("glitch_score", 5)] = True
    picked = pick_to_verify(analysis, 30, already, seed=1)
    assert len(picked) == 30 and not already[picked].any() and not analysis.known_unused[picked].any()
    assert analysis.top("glitch_score", 6)[-1] in picked  # the next top suspect is worth verifying
    fragments = fragment_likeness(analysis.table.structure, len(analysis))
    assert fragments.any() and int(np.argmax(fragments)) in picked  # the most fragment-like token too
    scores = np.linspace(0.0, 1.0, len(analysis))  # a detector's P(glitch): its top and where it is unsure
    unsure = int(np.argmin(np.abs(scores - 0.5)))
    picked = pick_to_verify(analysis, 30, already, seed=1, scores=scores)
    assert len(picked) == 30 and {len(analysis) - 1, unsure} <= set(picked.tolist())


def test_learning_rounds_stay_out_of_the_held_out_tokens(analysis, tiny_hf: TinyModel) -> None:
    """Two rounds within the budget: indicator tops and random, then where the first fit is least sure;
    never a held-out token. The labels are the tiny model's planted rows."""
    planted = np.zeros(len(analysis), dtype=bool)
    planted[list(tiny_hf.planted)] = True
    held = np.zeros(len(analysis), dtype=bool)
    held[1::2] = True
    held[planted] = False  # every planted row stays learnable
    rounds: list[np.ndarray] = []

    def verify(ids: np.ndarray) -> None:
        rounds.append(ids)
        analysis.ensure_verdicts().record(ids, np.where(planted[ids], Verdict.GLITCH, Verdict.NORMAL).astype(np.int8),
                                          np.where(planted[ids], 0.0, 0.9), [""] * len(ids))

    analysis.verdicts = None
    result = learn(analysis, verify, 60, held, seed=2, k=5, kind="boosting")
    assert [len(r) for r in rounds] == [40, 20] and not held[np.concatenate(rounds)].any()
    assert len(np.unique(np.concatenate(rounds))) == 60 and result.n_train == 60
    assert result.scores.shape == (len(analysis),) and result.weights == []  # trees report no coefficients
    analysis.verdicts = None
