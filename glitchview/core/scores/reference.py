"""The reference set of *unused* tokens that Magikarp's unembedding indicator measures against.

Rule (applied automatically, the union of):
  1. tokens named as unused or reserved: `<unused12>`, `[unused3]`, `<|reserved_special_token_7|>`;
  2. single-byte tokens for bytes that never occur in valid UTF-8 (0xC0, 0xC1, 0xF5-0xFF), as
     byte-fallback pieces (`<0xF5>`) or byte-level BPE pieces;
  3. embedding rows beyond the tokenizer's vocabulary (no token can ever select them).
When none of these exist (byte-level vocabularies trained only on bytes they saw, like SmolLM2's),
the fallback is the tight knot that barely-trained rows form: the FALLBACK_SIZE non-special tokens
nearest their own k-means centre. The user can override the set with explicit ids; the chosen
rule is always reported."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.vocab import TokenTable, invalid_byte_mask, unused_name_mask

FALLBACK_SIZE = 16


@dataclass(frozen=True)
class ReferenceSet:
    ids: np.ndarray
    rule: str


def choose_reference(table: TokenTable, center_distance: np.ndarray,
                     override: list[int] | None = None) -> ReferenceSet:
    """Pick the reference unused tokens by the documented rule, or take the user's ids.
    `center_distance` is each token's distance to its own k-means centre (for the fallback)."""
    n = len(table)
    if override:
        ids = np.unique(np.asarray(override, dtype=np.int64))
        bad = ids[(ids < 0) | (ids >= n)]
        if bad.size:
            raise ValueError(f"reference ids out of range 0..{n - 1}: {bad[:5].tolist()}")
        return ReferenceSet(ids, f"user-chosen ids ({ids.size} tokens)")
    named = unused_name_mask(table.pieces)
    invalid_byte = invalid_byte_mask(table.token_bytes, table.flags["byte"])
    no_token = table.flags["no_token"]
    parts = [(named, "unused/reserved names"), (invalid_byte, "bytes never in UTF-8"),
             (no_token, "rows without a token")]
    chosen = named | invalid_byte | no_token
    described = ", ".join(f"{int(mask.sum())} {label}" for mask, label in parts if mask.any())
    ids = np.flatnonzero(chosen)
    if ids.size:
        return ReferenceSet(ids, f"automatic: {described}")
    ordinary = np.flatnonzero(~table.flags["special"])
    knot = ordinary[np.argsort(center_distance[ordinary], kind="stable")[:FALLBACK_SIZE]]
    return ReferenceSet(np.sort(knot), f"fallback (no unused, reserved or invalid-byte tokens): the "
                                       f"{knot.size} tokens nearest their own cluster centre")
