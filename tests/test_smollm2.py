"""End to end on the real default demo model, SmolLM2-135M-Instruct (49,152 tokens)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from analysis_checks import assert_same_analysis

from glitchview.core.model.token_structure import add_token_structure
from glitchview.core.scores.indicators import INDICATORS, ranking
from glitchview.core.store.analysis_file import load_analysis, save_analysis
from glitchview.core.store.export import read_token_bytes, write_csv


def test_every_token_scored(smollm2_scan) -> None:
    model, analysis = smollm2_scan
    assert model.input_embeddings.shape == (49_152, 576) and model.tied and model.generative
    assert len(analysis) == 49_152 and analysis.model.n_tokens == 49_152
    assert set(analysis.scores) == set(INDICATORS)
    for name, values in analysis.scores.items():
        assert values.shape == (49_152,) and not np.isnan(values).any(), name
    assert analysis.projections["pca"].shape == (49_152, 2)
    assert np.bincount(analysis.labels, minlength=20).min() > 0


def test_token_table_matches_the_tokenizer(smollm2_scan) -> None:
    model, analysis = smollm2_scan
    table = analysis.table
    assert table.texts[model.tokenizer.token_to_id("Ġthe")] == " the"
    assert table.flags["special"].sum() >= 3 and table.flags["special"][0]  # <|endoftext|>
    assert table.flags["partial_utf8"].sum() > 100


def test_reference_tokens_sit_at_the_extreme_of_unembedding_cosine(smollm2_scan) -> None:
    _, analysis = smollm2_scan
    ref = analysis.reference.ids
    assert len(ref) > 0
    rank = ranking(analysis.scores["unembedding_cosine"], "low").rank
    assert rank[ref].max() <= 0.01 * len(analysis)  # all within the lowest 1%


def test_csv_round_trip_and_reopened_analysis(smollm2_scan, tmp_path: Path) -> None:
    _, analysis = smollm2_scan
    path = tmp_path / "smollm2.csv"
    ids = analysis.top("cluster_distance", len(analysis))
    assert write_csv(analysis, path, ids, "cluster_distance") == 49_152
    with path.open(encoding="utf-8", newline="") as handle:
        assert sum(1 for _ in csv.reader(handle)) == 49_152 + 1
    assert read_token_bytes(path) == dict(enumerate(analysis.table.token_bytes))
    saved = save_analysis(analysis, tmp_path / "smollm2.gva.npz")
    assert_same_analysis(analysis, load_analysis(saved))


def test_leftover_bpe_fragments_are_seen(smollm2_scan) -> None:
    """` Citiz` and ` pries` are never the tokenizer's choice for their words (` Citizen`, ` priest`):
    the token structure sees later merges consume them, and ` the` is not seen so."""
    model, analysis = smollm2_scan
    structure = add_token_structure(analysis.table, model.tokenizer).structure
    citiz, pries, the = (model.tokenizer.token_to_id(p) for p in ("ĠCitiz", "Ġpries", "Ġthe"))
    assert structure["longer_with_prefix"][citiz] >= 2 and structure["consumed_share"][citiz] == 1.0
    assert structure["consumed_share"][pries] == 1.0 and structure["consumed_share"][the] < 0.5
    assert structure["next_merge_ratio"][citiz] > 0.7 > structure["next_merge_ratio"][the]
