"""Why a token is a glitch: a category from what the tokenizer analysis shows, extending the seed
article's table (rare words, misspellings, special characters, repeated words) with Land &
Bartolo's tokenizer classes. Computed for every token in one pass; shown for verified ones."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import regex

from ..model.vocab import CATEGORIES, TokenTable

TAXONOMY: tuple[str, ...] = (
    "special/control token", "byte or partial-UTF-8 fragment", "unreachable piece", "whitespace/formatting run",
    "non-Latin script fragment", "code or concatenated identifier", "repeated-word token", "word fragment",
    "rare word", "digits", "punctuation/symbols", "other",
)
_REPEATED = regex.compile(r"(.{1,8}?)\1{2,}|(\p{L}{2,})\2")
_VOWEL = regex.compile(r"[aeiouy]", regex.IGNORECASE)


def _classify(text: str, category: str, flags: dict[str, bool]) -> str:
    if flags["special"] or flags["control"] or category == "no_token":
        return TAXONOMY[0]
    if flags["byte"] or flags["partial_utf8"]:
        return TAXONOMY[1]
    if flags["unreachable"]:
        return TAXONOMY[2]
    core = text.strip()
    if category == "whitespace":
        return TAXONOMY[3]
    if category in ("cjk", "non_latin"):
        return TAXONOMY[4]
    if _REPEATED.fullmatch(core):
        return TAXONOMY[6]
    if category == "code_identifier" or (len(core) > 12 and category == "latin_word"):
        return TAXONOMY[5]
    if category == "latin_word":
        # a piece without its leading space continues a word; one without vowels is no word at all
        return TAXONOMY[7] if not text.startswith(" ") or not _VOWEL.search(core) else TAXONOMY[8]
    if category == "digits":
        return TAXONOMY[9]
    if category == "punctuation":
        return TAXONOMY[10]
    return TAXONOMY[11]


def classify_tokens(table: TokenTable, ids: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Taxonomy code (index into TAXONOMY) of the tokens `ids` (every token by default), in order."""
    rows = np.arange(len(table)) if ids is None else np.asarray(ids, dtype=np.int64)
    flags = {name: mask[rows].tolist() for name, mask in table.flags.items()}
    names = [CATEGORIES[c] for c in table.category[rows]]
    codes = [TAXONOMY.index(_classify(table.texts[i], names[k], {f: flags[f][k] for f in flags}))
             for k, i in enumerate(rows.tolist())]
    return np.asarray(codes, dtype=np.int8)
