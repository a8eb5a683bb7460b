"""Does the default ranking show the truth first? Recall of a published list of verified under-trained
tokens within the top 1%, 2% and 5% of each indicator's ranking (known-unused tokens ranked apart, as
the tools show them), for the recommended glitch_score beside the old default (cluster_distance ranked
from its high end, the seed's direction) and every other indicator, from the same run.

The published list: Land & Bartolo's verified under-trained tokens of the Gemma-3 family (same tokenizer
as Gemma-3-270M), as a tab-separated file `token_id <TAB> max_prob <TAB> piece` ('#' lines are comments;
the piece is checked against the model's tokenizer so that a transcription error shows). Only rows with
max_prob < 0.01 (their verification threshold) count.
Run: `python bench/bench_truth.py --published FILE [--model gemma3]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402


def read_published(path: Path) -> list[tuple[int, float, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            token_id, max_prob, piece = line.split("\t")[:3]
            rows.append((int(token_id), float(max_prob), piece))
    return [r for r in rows if r[1] < 0.01]


def recall_at(order: np.ndarray, ids: np.ndarray, ranked: int, fractions: tuple[float, ...]) -> list[float]:
    """Share of `ids` within the first fraction x `ranked` positions of `order`."""
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return [float((position[ids] < f * ranked).mean()) for f in fractions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--published", type=Path, required=True, help="the published verified list (see above)")
    parser.add_argument("--model", default="gemma3")
    args = parser.parse_args()

    from glitchview.core.analysis import DEFAULT_INDICATOR
    from glitchview.core.pipeline import scan

    print(f"Machine: {machine()}")
    start = time.perf_counter()
    _, analysis = scan(args.model)
    print(f"Scan of {args.model}: {time.perf_counter() - start:.1f} s ({len(analysis)} tokens); "
          f"reference: {analysis.reference.rule}")
    published = read_published(args.published)
    mismatched = [(i, p, analysis.table.pieces[i]) for i, _, p in published if analysis.table.pieces[i] != p]
    if mismatched:
        raise SystemExit(f"{len(mismatched)} published pieces differ from the tokenizer's: {mismatched[:5]}")
    ids = np.array([i for i, _, _ in published])
    apart = analysis.known_unused
    ranked = int((~apart).sum())
    print(f"Published verified tokens: {len(ids)} (all pieces match the tokenizer; {int(apart[ids].sum())} of "
          f"them known unused). Known-unused tokens ranked apart: {int(apart.sum())}; "
          f"ranked vocabulary: {ranked} tokens, so top 1% = {int(0.01 * ranked)}, 2% = {int(0.02 * ranked)}")
    fractions = (0.01, 0.02, 0.05)
    rows = [(f"{DEFAULT_INDICATOR} (the default)", analysis.ranking(DEFAULT_INDICATOR).order),
            ("cluster_distance, high end (the old default)", analysis.ranking("cluster_distance", "high").order)]
    rows += [(f"{name}, {analysis.suspicious_end(name)} end", analysis.ranking(name).order)
             for name in analysis.scores if name != DEFAULT_INDICATOR]
    print(f"\n{'ranking':<48}" + "".join(f"{'top ' + format(f, '.0%'):>9}" for f in fractions))
    for label, order in rows:
        print(f"{label:<48}" + "".join(f"{r:>9.3f}" for r in recall_at(order, ids, ranked, fractions)))
    together = analysis.ranking(DEFAULT_INDICATOR).order
    buried = np.argsort(analysis.scores[DEFAULT_INDICATOR], kind="stable")[: int(0.02 * ranked)]
    print(f"\nWithout ranking them apart, {int(apart[buried].sum())} known-unused tokens would fill the top 2% of "
          f"{DEFAULT_INDICATOR}; ranked apart, its top 2% holds {int(apart[together[: int(0.02 * ranked)]].sum())}.")


if __name__ == "__main__":
    main()
