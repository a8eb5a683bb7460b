"""Token structure on a BPE tokenizer built here with known merges: the counts of longer tokens that
extend a token and the merges that consume it are exact."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import AddedToken, Tokenizer, models

from glitchview.core.model.token_structure import STRUCTURE, add_token_structure, fragment_likeness
from glitchview.core.model.vocab import build_token_table

MERGES = [("c", "i"), ("ci", "t"), ("i", "z"), ("cit", "iz"), ("e", "n"), ("citiz", "en"), ("citizen", "s")]


@pytest.fixture(scope="module")
def table():
    chars = ["c", "i", "t", "z", "e", "n", "s"]
    pieces = chars + [a + b for a, b in MERGES]
    tokenizer = Tokenizer(models.BPE({piece: i for i, piece in enumerate(pieces)}, MERGES))
    tokenizer.add_special_tokens([AddedToken("citizenship", special=True)])  # a special: never counted
    return add_token_structure(build_token_table(tokenizer, len(pieces) + 1), tokenizer)


def row(table, text: str) -> dict[str, float]:
    i = table.pieces.index(text)
    return {name: float(table.structure[name][i]) for name in STRUCTURE}


def test_longer_tokens_that_extend_a_token(table) -> None:
    assert row(table, "citiz")["longer_with_prefix"] == 2  # citizen, citizens (not the special)
    assert row(table, "c")["longer_with_prefix"] == 5  # ci, cit, citiz, citizen, citizens
    assert row(table, "citizens")["longer_with_prefix"] == 0
    assert row(table, "n")["longer_with_suffix"] == 2  # en, citizen
    assert row(table, "iz")["longer_with_suffix"] == 1  # citiz
    assert table.structure["longer_with_prefix"][-1] == 0  # the special


def test_merges_that_consume_a_token(table) -> None:
    citiz = row(table, "citiz")  # made by merge 3, consumed by merge 5 only
    assert citiz["consuming_merges"] == 1
    assert citiz["consumed_share"] == pytest.approx(4 / 6) and citiz["next_merge_ratio"] == pytest.approx(4 / 6)
    assert row(table, "citizen")["consumed_share"] == pytest.approx(6 / 7)  # made by 5, consumed by 6
    assert row(table, "citizens")["consuming_merges"] == 0 and row(table, "citizens")["consumed_share"] == 0
    i = row(table, "i")  # a single character is never made by a merge: no share, however often it is used
    assert i["consuming_merges"] == 0 and i["consumed_share"] == 0
    fragments = fragment_likeness(table.structure, len(table))
    assert fragments[table.pieces.index("citizen")] > fragments[table.pieces.index("citiz")] > 0
    assert fragments[table.pieces.index("citizens")] == 0


def test_a_tokenizer_without_merges_has_no_merge_columns() -> None:
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "ab": 1, "abc": 2}, unk_token="[UNK]"))
    table = add_token_structure(build_token_table(tokenizer, 3), tokenizer)
    assert table.structure["longer_with_prefix"].tolist() == [0, 1, 0]
    assert not np.any(table.structure["consuming_merges"])
