"""Nearest neighbours of a token by cosine similarity, in the input embedding and in the
unembedding: what a barely trained row sits among (the Embedding Projector's most used view).
One matrix-vector product per space over the whole vocabulary, in row chunks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 65_536


@dataclass(frozen=True)
class Neighbours:
    ids: np.ndarray  # nearest first, the token itself left out
    cosine: np.ndarray  # cosine similarity of each


def cosine_neighbours(matrix: np.ndarray, token: int, k: int = 10) -> Neighbours:
    """The `k` rows most similar to row `token` (rows that are all zero or not finite never count)."""
    query = np.asarray(matrix[token], dtype=np.float64)
    query_norm = np.linalg.norm(query)
    similarity = np.full(matrix.shape[0], -np.inf)
    if query_norm == 0 or not np.isfinite(query_norm):
        return Neighbours(np.zeros(0, dtype=np.int64), np.zeros(0))
    for start in range(0, matrix.shape[0], CHUNK):
        block = np.asarray(matrix[start:start + CHUNK], dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            sims = (block @ query.astype(np.float32)).astype(np.float64) / (norms * query_norm)
        similarity[start:start + len(block)] = np.where(np.isfinite(sims) & (norms > 0), sims, -np.inf)
    similarity[token] = -np.inf
    k = min(k, int(np.isfinite(similarity).sum()))
    top = np.argpartition(-similarity, k)[:k] if k < len(similarity) else np.arange(len(similarity))
    top = top[np.argsort(-similarity[top], kind="stable")][:k]
    return Neighbours(top.astype(np.int64), similarity[top])
