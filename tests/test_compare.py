"""Comparing two models that share a tokenizer: a tiny model and a copy of it, saved as a real model
folder, in which some ordinary rows were reset to look untrained; a copy with two ids swapped in its
vocabulary is refused."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TinyModel, train_tokenizer, untrained_ids

from glitchview.cli import main
from glitchview.core.errors import VocabularyMismatch
from glitchview.core.research_operations import analysis_of
from glitchview.core.scores.compare import compare, undertrained
from glitchview.core.verify.verdicts import Verdict

UNTRAINED = set(untrained_ids(train_tokenizer()))  # the tiny models' planted rows and never-used bytes
RESET = [i for i in range(60, 320) if i not in UNTRAINED][::8][:30]  # 30 ordinary tokens


def reset_rows(source: Path, target: Path, ids: list[int], seed: int = 3) -> Path:
    """A copy of a model folder whose embedding rows `ids` are set to the tiny shared value untrained rows have."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    tensors = load_file(weights)
    emb = tensors["model.embed_tokens.weight"]
    emb[ids] = 0.01 + 0.001 * np.random.default_rng(seed).standard_normal((len(ids), emb.shape[1]))
    save_file(tensors, weights, metadata={"format": "pt"})
    return target


def swap_two_ids(source: Path, target: Path) -> Path:
    """A copy of a model folder whose tokenizer holds ids 150 and 151 the other way round."""
    shutil.copytree(source, target)
    spec = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    first, second = (t for t, i in vocab.items() if i in (150, 151))
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (target / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def pair(tiny_hf: TinyModel, tmp_path_factory: pytest.TempPathFactory):
    folder = reset_rows(tiny_hf.path, tmp_path_factory.mktemp("compare") / "reset", RESET)
    return analysis_of(str(tiny_hf.path)), analysis_of(str(folder)), folder


def test_reset_rows_are_under_trained_in_b_only(pair) -> None:
    a, b, _ = pair
    assert len(RESET) == 30
    n_untrained_b = len(UNTRAINED | set(RESET))
    c = compare(a, b, share=n_untrained_b / len(a))
    assert c.indicator == "glitch_score"  # the recommended score decides for unverified tokens
    only_b = set(np.flatnonzero(c.only_b).tolist())
    assert only_b <= set(RESET)  # nothing else became under-trained
    assert len(only_b) >= 0.8 * len(RESET)  # (a reset row can sit in A's suspicious share by chance)
    assert not set(np.flatnonzero(c.only_a).tolist()) & (set(RESET) | UNTRAINED)
    norm = c.deltas["norm"]
    assert (norm[RESET] < -1.0).all()
    others = np.setdiff1d(np.arange(len(a)), RESET)
    np.testing.assert_array_equal(norm[others], 0.0)  # the other rows are the same weights


def test_verdicts_decide_over_the_indicator(pair) -> None:
    a, _, _ = pair
    top = a.top("unembedding_cosine", 5)
    verdicts = a.ensure_verdicts()
    verdicts.verdict[top[0]] = Verdict.NORMAL
    verdicts.verdict[top[-1] + 0] = Verdict.GLITCH
    try:
        mask = undertrained(a, "unembedding_cosine", 5 / len(a))
        assert not mask[top[0]] and mask[top[1:]].all()
    finally:
        a.verdicts = None


def test_other_vocabulary_is_refused_with_the_count(pair, tmp_path: Path) -> None:
    a, _, folder = pair
    swapped = swap_two_ids(folder, tmp_path / "swapped")
    with pytest.raises(VocabularyMismatch, match=r"2 of 320 ids hold different tokens"):
        compare(a, analysis_of(str(swapped)))


def test_cli_writes_every_token(tiny_hf: TinyModel, pair, tmp_path: Path, capsys) -> None:
    _, _, folder = pair
    out = tmp_path / "diff.csv"
    assert main(["compare", str(tiny_hf.path), str(folder), "--out", str(out), "--share", "0.15"]) == 0
    printed = capsys.readouterr().out
    assert "Under-trained in B, not in A" in printed
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert len(rows) == tiny_hf.vocab_size
    assert float(rows[RESET[0]]["norm_delta"]) < -1.0
    assert {int(r["id"]) for r in rows if r["undertrained_b"] == "1" and r["undertrained_a"] == "0"} <= set(RESET)
    assert main(["compare", str(tiny_hf.path), str(tmp_path / "nope.gva.npz")]) == 2


@pytest.mark.slow
def test_smollm2_and_a_copy_with_300_rows_reset(smollm2_scan, tmp_path: Path) -> None:
    """SmolLM2 against a copy (a real model folder) whose 300 ordinary word tokens were set to the mean of
    its reference (barely trained) rows plus a little noise, as untrained rows look."""
    from safetensors.numpy import save_file

    model, a = smollm2_scan
    words = np.flatnonzero(np.asarray(a.table.category_names()) == "latin_word")
    ordinary = np.setdiff1d(words, a.top("unembedding_cosine", 5 * 983))
    reset = np.sort(np.random.default_rng(0).choice(ordinary, 300, replace=False))
    folder = tmp_path / "smollm2-reset"
    shutil.copytree(model.folder, folder)  # the GGUF's tokenizer and config, as GlitchView cached them
    emb = model.input_embeddings.copy()  # the matrix the GGUF holds, written as a real safetensors folder
    knot = emb[a.reference.ids].mean(axis=0)
    emb[reset] = knot + 0.01 * emb.std() * np.random.default_rng(1).standard_normal((len(reset), emb.shape[1]))
    save_file({"model.embed_tokens.weight": emb}, folder / "model.safetensors", metadata={"format": "pt"})
    del emb

    c = compare(a, analysis_of(str(folder)))
    only_b = np.flatnonzero(c.only_b)
    assert np.isin(reset, only_b).mean() >= 0.9
    assert (c.deltas["norm"][np.setdiff1d(np.arange(len(a)), reset)] == 0).all()
    assert len(only_b) <= 2 * len(reset)
