"""Counting tokens word by word, for byte-level BPE tokenizers (GPT-2, SmolLM2, Llama-3, Qwen, ...).

Why: the Rust tokenizer spends most of its time in its pre-tokenizing regex (about 1 MB/s per core
here), while Python's `regex` module runs the same pattern several times faster. A byte-level BPE
never merges across the words its pattern cuts, so the count of every token is the sum, over the
distinct words of the text, of the word's count times its tokens, and each distinct word is run
through the tokenizer's own BPE model (`tokenizer.model.tokenize`) once and remembered.

The word path is taken only when it is exact by construction: no normalizer, a pre-tokenizer that
is ByteLevel with its regex (GPT-2's pattern) or a regex Split (isolated) followed by ByteLevel
without one, no prefix space, and added tokens without strip or single-word rules (they are cut out
of the text first, longest first, as the tokenizer does). A text whose words do not cover it
whole is counted with `encode` instead. `word_counter` returns None for any other tokenizer."""

from __future__ import annotations

import collections
import itertools
import json
from typing import Any

import numpy as np
import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CACHE_WORDS = 1 << 20  # distinct words remembered per process


def _byte_level_table() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte, as a str.translate table over latin-1 text."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


_BYTE_LEVEL = str.maketrans(_byte_level_table())


def _pattern(pre: dict[str, Any] | None) -> str | None:
    """The word pattern of a byte-level pre-tokenizer spec, or None when it is not one we can follow."""
    if not pre:
        return None
    if pre.get("type") == "ByteLevel":
        return GPT2_PATTERN if pre.get("use_regex", True) and not pre.get("add_prefix_space") else None
    if pre.get("type") != "Sequence" or len(pre.get("pretokenizers", [])) != 2:
        return None
    split, byte_level = pre["pretokenizers"]
    if (split.get("type") != "Split" or split.get("behavior") != "Isolated" or split.get("invert")
            or byte_level.get("type") != "ByteLevel" or byte_level.get("use_regex", True)
            or byte_level.get("add_prefix_space")):
        return None
    pattern = split.get("pattern", {})
    return pattern.get("Regex") or (regex.escape(pattern["String"]) if "String" in pattern else None)


class WordCounter:
    """Token counts of texts, word by word (see the module docstring)."""

    def __init__(self, tokenizer: Any, pattern: str, added: dict[str, int], n_rows: int) -> None:
        self.tokenizer, self.n_rows = tokenizer, n_rows
        self.words = regex.compile(pattern)
        self.added = added
        self.added_split = regex.compile("(" + "|".join(regex.escape(a) for a in sorted(added, key=len, reverse=True))
                                         + ")") if added else None
        self.cache: dict[str, list[int]] = {}

    def _tokens(self, word: str) -> list[int]:
        ids = self.cache.get(word)
        if ids is None:
            ids = [t.id for t in self.tokenizer.model.tokenize(word.encode("utf-8").decode("latin-1")
                                                                  .translate(_BYTE_LEVEL))]
            if len(self.cache) < CACHE_WORDS:
                self.cache[word] = ids
        return ids

    def count(self, texts: list[str]) -> np.ndarray:
        """Occurrences of every token id (length: the tokenizer's size or n_rows, whichever is larger)."""
        words: collections.Counter = collections.Counter()
        direct: list[int] = []
        for text in texts:
            segments = self.added_split.split(text) if self.added_split else [text]
            for k, segment in enumerate(segments):
                if k % 2:  # an added token, cut out as the tokenizer does
                    direct.append(self.added[segment])
                    continue
                found = self.words.findall(segment)
                if sum(map(len, found)) != len(segment):  # the pattern leaves gaps: let the tokenizer do it
                    direct.extend(self.tokenizer.encode(segment, add_special_tokens=False).ids)
                    continue
                words.update(found)
        cache = self.cache
        for word in words.keys() - cache.keys():
            self._tokens(word)
        tokens = [cache.get(word) or self._tokens(word) for word in words]  # (past the cache's cap: recomputed)
        ids = np.fromiter(itertools.chain(direct, itertools.chain.from_iterable(tokens)), dtype=np.int64)
        weights = np.concatenate([np.ones(len(direct)), np.repeat(np.fromiter(words.values(), dtype=np.float64,
                                                                               count=len(words)),
                                                                   np.fromiter(map(len, tokens), dtype=np.int64,
                                                                               count=len(tokens)))])
        size = max(self.n_rows, self.tokenizer.get_vocab_size(with_added_tokens=True))
        return np.bincount(ids, weights, minlength=size).astype(np.int64)

def word_counter(tokenizer: Any, n_rows: int) -> WordCounter | None:
    """A WordCounter for this tokenizer when counting word by word is exact for it, else None. Reads only
    the parts it needs (serialising a whole 262k-token tokenizer takes seconds)."""
    model = tokenizer.model
    if tokenizer.normalizer is not None or type(model).__name__ != "BPE" or model.dropout:
        return None
    pre = tokenizer.pre_tokenizer
    pattern = _pattern(json.loads(pre.__getstate__()) if pre is not None else None)
    added = tokenizer.get_added_tokens_decoder()
    if pattern is None or any(a.lstrip or a.rstrip or a.single_word for a in added.values()):
        return None
    return WordCounter(tokenizer, pattern, {a.content: int(i) for i, a in added.items()}, n_rows)
