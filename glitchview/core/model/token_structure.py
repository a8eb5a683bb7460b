"""Token structure: where a token sits among the other tokens of its vocabulary, computed once per
vocabulary from the tokenizer alone (no corpus).

Many under-trained tokens of BPE vocabularies are leftover fragments: ` Citiz` was merged while training
the tokenizer because ` Citizen` and ` Citizens` were frequent, then nearly every occurrence of it was
merged further, so the model hardly ever saw it alone. Two views of that, cheap on a 262k vocabulary:

- extensions: how many longer tokens begin (or end) with the token's exact bytes, leading space included;
- merges (BPE, from the tokenizer's own serialisation): the merges that consume the token, and the share
  of its occurrences they are estimated to take. Merges are learnt in order of pair frequency, which falls
  roughly as 1/rank (Zipf), so a merge of rank r' consuming a token created at rank r takes about r/r' of
  its occurrences; ` pries` (rank 13,087) is consumed by ` pries`+`ts` at rank 15,150, ` Citiz` (16,707)
  by ` Citiz`+`ens` at 21,704: together their merges take more than all of them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .vocab import TokenTable

STRUCTURE: tuple[str, ...] = ("longer_with_prefix", "longer_with_suffix", "consuming_merges",
                              "consumed_share", "next_merge_ratio")


def extension_counts(token_bytes: list[bytes], usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every usable token, how many distinct longer usable tokens begin with its bytes, and how many
    end with them: in sorted order the strings beginning with a key follow it in one run, so one pass
    with a stack of open prefixes counts them all (then the same on the reversed strings)."""
    rows = np.flatnonzero(usable)
    counts = []
    for flip in (False, True):
        keys = [token_bytes[i][::-1] if flip else token_bytes[i] for i in rows]
        longer = _longer_with_prefix(sorted(set(keys)))
        out = np.zeros(len(token_bytes), dtype=np.float64)
        out[rows] = [longer[key] for key in keys]
        counts.append(out)
    return counts[0], counts[1]


def _longer_with_prefix(ordered: list[bytes]) -> dict[bytes, int]:
    """For each of the distinct sorted strings, how many others begin with it."""
    longer: dict[bytes, int] = {}
    stack: list[tuple[bytes, int]] = []
    for position, key in enumerate(ordered):
        while stack and not key.startswith(stack[-1][0]):
            open_key, start = stack.pop()
            longer[open_key] = position - start - 1
        stack.append((key, position))
    for open_key, start in stack:
        longer[open_key] = len(ordered) - start - 1
    return longer


def bpe_merges(tokenizer: Any) -> list[list[str]]:
    """The merges of a BPE tokenizer, in rank order, from its own serialisation (the Python binding has
    no accessor); empty for WordPiece, Unigram and the rest."""
    spec = json.loads(tokenizer.model.__getstate__())  # the model's own JSON, a third of `to_str()`
    if spec.get("type") != "BPE":
        return []
    merges = spec.get("merges", [])
    return merges if not merges or isinstance(merges[0], list) else [m.split(" ", 1) for m in merges]


def merge_features(merges: list[list[str]], piece_ids: dict[str, int], n: int) -> dict[str, np.ndarray]:
    """Per token: how many merges consume it (as left or right part), the estimated share of its
    occurrences they take (sum of created rank / consuming rank, capped at 1), and its created rank over
    the rank of the first merge that consumes it (1 = consumed by the very next merge; 0 = never)."""
    lookup = piece_ids.get
    result = np.fromiter((lookup(a + b, -1) for a, b in merges), dtype=np.int64, count=len(merges))
    left = np.fromiter((lookup(a, -1) for a, _ in merges), dtype=np.int64, count=len(merges))
    right = np.fromiter((lookup(b, -1) for _, b in merges), dtype=np.int64, count=len(merges))
    ranks = np.arange(len(merges), dtype=np.int64)
    made = np.full(n, len(merges), dtype=np.int64)
    np.minimum.at(made, result[result >= 0], ranks[result >= 0])  # the first merge that creates each token
    tokens = np.concatenate([left, right[right != left]])
    used_at = np.concatenate([ranks, ranks[right != left]])
    keep = (tokens >= 0) & (made[np.maximum(tokens, 0)] < used_at)
    tokens, used_at = tokens[keep], used_at[keep]
    created = made[tokens]
    consumers = np.bincount(tokens, minlength=n).astype(np.float64)
    share = np.bincount(tokens, weights=(created + 1) / (used_at + 1), minlength=n)
    first_use = np.full(n, len(merges), dtype=np.int64)
    np.minimum.at(first_use, tokens, used_at)
    ratio = np.where(consumers > 0, (made + 1) / (first_use + 1), 0.0)
    return {"consuming_merges": consumers, "consumed_share": np.minimum(share, 1.0), "next_merge_ratio": ratio}


def token_structure(tokenizer: Any, pieces: list[str], token_bytes: list[bytes],
                    usable: np.ndarray) -> dict[str, np.ndarray]:
    """Every `STRUCTURE` column for a vocabulary (zero where it does not apply: specials, rows without a
    token, merge columns of a tokenizer without merges)."""
    n = len(pieces)
    prefix, suffix = extension_counts(token_bytes, usable)
    piece_ids = {piece: i for i, piece in enumerate(pieces) if usable[i]}
    merged = merge_features(bpe_merges(tokenizer), piece_ids, n)
    return {"longer_with_prefix": prefix, "longer_with_suffix": suffix, **merged}


def add_token_structure(table: TokenTable, tokenizer: Any) -> TokenTable:
    """`table` with its structure columns (computed here unless it holds them: an analysis saved by
    `hunt` does). Only the learning detector uses them, so opening a model does not pay for them
    (about 2 s on Gemma-3's 262k tokens)."""
    if not table.structure:
        usable = ~table.flags["special"] & ~table.flags["no_token"]
        table.structure = token_structure(tokenizer, table.pieces, table.token_bytes, usable)
    return table


def fragment_likeness(structure: dict[str, np.ndarray], n: int) -> np.ndarray:
    """0..2: how much a token looks like a leftover BPE fragment (the estimated share of its occurrences
    that later merges take, plus how soon the first of them comes); zeros without structure columns."""
    if "consumed_share" not in structure:
        return np.zeros(n)
    return structure["consumed_share"] + structure["next_merge_ratio"]
