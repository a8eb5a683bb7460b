"""Token table flags and categories on real tokenizers: a tiny byte-level BPE and MiniLM's WordPiece."""

from __future__ import annotations

import itertools
import uuid

import numpy as np
import pytest
from tiny_models import TinyModel, pre_tokenizers_alphabet_map

from glitchview.core.model.loading import read_tokenizer
from glitchview.core.model.vocab import CATEGORIES, FLAGS, build_token_table, joined_arrays, table_arrays
from glitchview.core.pipeline import open_model
from glitchview.core.scores.reference import choose_reference


@pytest.fixture(scope="module")
def tiny_table(tiny_hf: TinyModel):
    tok = read_tokenizer(tiny_hf.path)
    return tok, build_token_table(tok, tiny_hf.vocab_size + 3)  # 3 matrix rows without a token


def test_special_and_rows_without_token(tiny_table) -> None:
    tok, table = tiny_table
    assert table.flags["special"][tok.token_to_id("<|endoftext|>")]
    assert table.flags["no_token"][-3:].all() and not table.flags["no_token"][:-3].any()
    assert table.category_names()[-1] == "no_token"
    assert set(FLAGS) == set(table.flags)


def test_byte_tokens_have_their_exact_bytes(tiny_table) -> None:
    tok, table = tiny_table
    stand_in = pre_tokenizers_alphabet_map()
    for byte in (0x00, 0x0A, 0x41, 0xC3, 0xFF):
        i = tok.token_to_id(stand_in[byte])
        assert table.token_bytes[i] == bytes([byte])
    lone = tok.token_to_id(stand_in[0xC3])
    assert table.flags["partial_utf8"][lone] and table.flags["byte"][lone]
    assert table.category_names()[lone] == "byte_fragment"
    newline = tok.token_to_id(stand_in[0x0A])
    assert table.flags["control"][newline] and table.flags["whitespace"][newline]


def test_decoded_texts_and_pieces(tiny_table) -> None:
    tok, table = tiny_table
    i = tok.token_to_id("Ġthe")
    assert table.pieces[i] == "Ġthe" and table.texts[i] == " the" and table.token_bytes[i] == b" the"
    assert table.category_names()[i] == "latin_word"
    assert not table.flags["unreachable"][i]


def test_reference_rule_finds_never_in_utf8_bytes(tiny_table) -> None:
    tok, table = tiny_table
    ref = choose_reference(table, np.zeros(len(table)))
    stand_in = pre_tokenizers_alphabet_map()
    expected = {tok.token_to_id(stand_in[b]) for b in [0xC0, 0xC1, *range(0xF5, 0x100)]}
    assert expected <= set(ref.ids.tolist())
    assert set(ref.ids.tolist()) - expected == {len(table) - 3, len(table) - 2, len(table) - 1}
    assert "13 bytes never in UTF-8" in ref.rule and "3 rows without a token" in ref.rule
    assert choose_reference(table, np.zeros(len(table)), [5, 3]).ids.tolist() == [3, 5]
    with pytest.raises(ValueError, match="out of range"):
        choose_reference(table, np.zeros(len(table)), [10**6])


def test_minilm_wordpiece_table() -> None:
    model = open_model("minilm")
    table = build_token_table(model.tokenizer, model.input_embeddings.shape[0])
    names = table.category_names()
    vocab = model.tokenizer.get_vocab()
    assert len(table) == 30_522
    assert table.flags["special"][vocab["[CLS]"]] and names[vocab["[CLS]"]] == "special"
    ing = vocab["##ing"]
    assert table.token_bytes[ing] == b"ing" and not table.flags["unreachable"][ing]
    assert names[vocab["hello"]] == "latin_word"
    assert names[vocab["2019"]] == "digits"
    assert names[vocab["の"]] == "cjk"
    # WordPiece continuation pieces are reachable glued to a word; only a small share is not
    assert table.flags["unreachable"].mean() < 0.05
    ref = choose_reference(table, np.zeros(len(table)))
    assert "unused/reserved names" in ref.rule
    assert vocab["[unused0]"] in set(ref.ids.tolist()) and len(ref.ids) >= 990
    assert set(names) <= set(CATEGORIES)


def test_a_table_built_in_shares_is_the_whole_table(tiny_hf: TinyModel) -> None:
    """Shares of the rows, one past the vocabulary's end among them, join into the table built whole."""
    tok = read_tokenizer(tiny_hf.path)
    n_rows = tiny_hf.vocab_size + 3
    whole = table_arrays(build_token_table(tok, n_rows))
    for cuts in ([0, 1, n_rows], [0, 7, tiny_hf.vocab_size, n_rows], [0, n_rows - 1, n_rows]):
        shares = [table_arrays(build_token_table(tok, n_rows, range(a, b))) for a, b in itertools.pairwise(cuts)]
        joined = joined_arrays(shares)
        assert joined.keys() == whole.keys()
        for name in whole:
            np.testing.assert_array_equal(joined[name], whole[name], err_msg=f"{name}, shares {cuts}")


def test_smollm2_table_built_in_child_shares_matches_the_whole_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from glitchview.core.model import vocab

    model = open_model("smollm2")
    n_rows = model.input_embeddings.shape[0]
    monkeypatch.setattr(vocab, "MIN_SHARE_ROWS", 8_192)  # two shares on two cores, as on Gemma-3
    fingerprint = f"test-shares-{uuid.uuid4().hex}"
    path = vocab.table_cache_path(fingerprint, n_rows)
    try:
        built = table_arrays(vocab.cached_token_table(model.folder, fingerprint, n_rows))
        assert path.is_file() and not list(path.parent.glob(".shares-*"))  # the shares' folder is gone
    finally:
        path.unlink(missing_ok=True)
    whole = table_arrays(build_token_table(model.tokenizer, n_rows))
    for name in whole:
        np.testing.assert_array_equal(built[name], whole[name], err_msg=name)
