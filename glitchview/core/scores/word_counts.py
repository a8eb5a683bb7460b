"""Counting tokens word by word, for BPE tokenizers whose words can be cut out of a text exactly:
byte-level BPE (GPT-2, SmolLM2, Llama-3, Qwen, ...) and SentencePiece-style BPE that only replaces
spaces with "▁" (Gemma-3).

Why: the Rust tokenizer spends most of its time pre-tokenizing (about 1 MB/s per core here) or, without
a pre-tokenizer, running BPE over whole lines, while Python's regular expressions cut the same words
several times faster. BPE never merges across a cut that no vocabulary entry spans, so the count of
every token is the sum, over the distinct words of the text, of the word's count times its tokens;
each distinct word is run through the tokenizer's own BPE model (`tokenizer.model.tokenize`) once
and remembered.

The word path is taken only when it is exact by construction, else `word_counter` returns None:
- byte-level: no normalizer, a pre-tokenizer that is ByteLevel with its regex (GPT-2's pattern) or a
  regex Split (isolated) followed by ByteLevel without one, no prefix space; the words are the
  pattern's matches (a text they do not cover whole is counted with `encode` instead);
- "▁" style: the normalizer replaces " " with "▁" and nothing else, no pre-tokenizer (or a split on
  " ", which finds nothing once spaces are replaced); the words are cut before every "▁" whose
  preceding character never precedes a "▁" inside a vocabulary entry (so no entry spans the cut);
- both: a BPE model without dropout or word affixes, added tokens without strip, single-word or
  normalization rules (they are cut out of the raw text first, longest first, as the tokenizer does).
Each kind also says where a text file may be cut between documents (`cut`, a bytes pattern: the
position after a match), so that no token changes."""

from __future__ import annotations

import collections
import itertools
import json
import re
from typing import Any

import numpy as np
import regex

from ..model.vocab import byte_level_chars

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CACHE_WORDS = 1 << 20  # distinct words remembered per process


_BYTE_LEVEL = str.maketrans(byte_level_chars())  # bytes read as latin-1 -> GPT-2's stand-ins


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
    """Token counts of texts, word by word (see the module docstring); subclasses cut the words."""

    cut: re.Pattern  # where a text file may be cut between documents

    def __init__(self, tokenizer: Any, added: dict[str, int], n_rows: int) -> None:
        self.tokenizer, self.n_rows = tokenizer, n_rows
        self.added = added
        self.added_split = re.compile(f"({_longest_first(list(added))})") if added else None
        self.cache: dict[str, list[int]] = {}

    def words(self, segment: str) -> list[str] | None:
        """The words of a text without added tokens, or None when they cannot be cut exactly."""
        raise NotImplementedError

    def model_text(self, word: str) -> str:
        return word

    def _tokens(self, word: str) -> list[int]:
        ids = self.cache.get(word)
        if ids is None:
            ids = [t.id for t in self.tokenizer.model.tokenize(self.model_text(word))]
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
                found = self.words(segment)
                if found is None:  # let the tokenizer do it
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


class ByteLevelWords(WordCounter):
    # after a single line end between non-space bytes, or before a single space between non-space bytes:
    # every word of these patterns ends at a line end or before a space, and the next starts afresh
    cut = re.compile(rb"[^\s](?:\n(?=[^\s])|(?= [^\s]))")

    def __init__(self, tokenizer: Any, pattern: str, added: dict[str, int], n_rows: int) -> None:
        super().__init__(tokenizer, added, n_rows)
        self.pattern = regex.compile(pattern)

    def words(self, segment: str) -> list[str] | None:
        found = self.pattern.findall(segment)
        return found if sum(map(len, found)) == len(segment) else None  # the pattern left gaps

    def model_text(self, word: str) -> str:
        return word.encode("utf-8").decode("latin-1").translate(_BYTE_LEVEL)


class SpaceMarkWords(WordCounter):
    def __init__(self, tokenizer: Any, added: dict[str, int], n_rows: int) -> None:
        super().__init__(tokenizer, added, n_rows)
        vocab = tokenizer.get_vocab(with_added_tokens=False)
        spanning = {m.group(1) for t in vocab if "▁" in t[1:] for m in _BEFORE_MARK.finditer(t)}
        excluded = "".join(re.escape(c) for c in sorted(spanning | {"▁"}))
        self.splitter = re.compile(f"(?<=[^{excluded}])(?=▁)")
        # a file is cut before a single space that follows a byte no entry spans (any non-ASCII byte is
        # excluded when a non-ASCII character is spanned)
        ascii_bytes = "".join(re.escape(c) for c in spanning if ord(c) < 128).encode()
        non_ascii = rb"\x80-\xff" if any(ord(c) >= 128 for c in spanning) else b""
        self.cut = re.compile(rb"[^\s" + ascii_bytes + non_ascii + rb"](?= [^\s])")

    def words(self, segment: str) -> list[str] | None:
        return self.splitter.split(segment.replace(" ", "▁"))


_BEFORE_MARK = re.compile("([^▁])(?=▁)")


def _longest_first(strings: list[str]) -> str:
    """A pattern matching any of `strings`, the longest one where several start at the same place (as the
    tokenizer's added-token matcher does), built as a trie: thousands of added tokens (Gemma-3 has 6,384)
    cost one step per character instead of one try per token."""
    trie: dict = {}
    for text in strings:
        node = trie
        for char in text:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [re.escape(char) + build(child) for char, child in node.items() if char]
        if not branches:
            return ""
        group = "(?:" + "|".join(branches) + ")"
        return group + "?" if "" in node else group  # greedy: the longer continuation is tried first

    return build(trie)


def _state(component: Any) -> dict[str, Any] | None:
    return json.loads(component.__getstate__()) if component is not None else None


def word_counter(tokenizer: Any, n_rows: int) -> WordCounter | None:
    """A WordCounter for this tokenizer when counting word by word is exact for it, else None. Reads only
    the parts it needs (serialising a whole 262k-token tokenizer takes seconds)."""
    model = tokenizer.model
    if (type(model).__name__ != "BPE" or model.dropout or getattr(model, "continuing_subword_prefix", None)
            or getattr(model, "end_of_word_suffix", None)):
        return None
    added = tokenizer.get_added_tokens_decoder()
    if any(a.lstrip or a.rstrip or a.single_word or a.normalized for a in added.values()):
        return None
    added_ids = {a.content: int(i) for i, a in added.items()}
    normalizer, pre = _state(tokenizer.normalizer), _state(tokenizer.pre_tokenizer)
    if normalizer is None:
        pattern = _pattern(pre)
        return ByteLevelWords(tokenizer, pattern, added_ids, n_rows) if pattern else None
    marks_spaces = normalizer == {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    no_split = pre is None or (pre.get("type") == "Split" and pre.get("pattern") == {"String": " "}
                               and not pre.get("invert"))
    return SpaceMarkWords(tokenizer, added_ids, n_rows) if marks_spaces and no_split else None
