"""Which signals should the recommended `glitch_score` combine? Each candidate combination (weighted means of
suspicion percentiles, as `indicators.combine_glitch_score` computes them) measured two ways in one run:
recall of a published list of verified under-trained Gemma-3 tokens within the top 1/2/5% of the ranked
vocabulary (`bench_truth.py` explains the list; known-unused tokens ranked apart), and on SmolLM2 the full
test of each candidate's top k over the whole vocabulary (known-unused left out), every token of the top k
in the denominator (uncertain counts as not glitch). Verdicts are kept in `--store` so that candidates
sharing tokens verify them once.
Run: `python bench/bench_glitch_score.py --published FILE [--store FILE] [--top 50,100]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_detector import VerdictStore  # noqa: E402
from bench_truth import read_published, recall_at  # noqa: E402
from machine import machine  # noqa: E402

CANDIDATES: dict[str, dict[str, tuple[str, float]]] = {  # part -> (suspicious end, weight)
    "unembedding_cosine_pc1 x2 + unembedding_cosine (glitch_score now)":
        {"unembedding_cosine_pc1": ("low", 2.0), "unembedding_cosine": ("low", 1.0)},
    "unembedding_cosine x2 + cluster_distance + centroid_distance (before)":
        {"unembedding_cosine": ("low", 2.0), "cluster_distance": ("low", 1.0), "centroid_distance": ("low", 1.0)},
    "unembedding_cosine_pc1 x2 + cluster_distance + centroid_distance":
        {"unembedding_cosine_pc1": ("low", 2.0), "cluster_distance": ("low", 1.0), "centroid_distance": ("low", 1.0)},
    "unembedding_cosine_pc1 alone": {"unembedding_cosine_pc1": ("low", 1.0)},
    "unembedding_cosine alone": {"unembedding_cosine": ("low", 1.0)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--published", type=Path, required=True, help="the published Gemma-3 list (bench_truth.py)")
    parser.add_argument("--store", type=Path, help="SmolLM2 verdicts file: looked up, extended, written")
    parser.add_argument("--top", default="50,100")
    args = parser.parse_args()

    from glitchview.core.pipeline import scan
    from glitchview.core.scores.indicators import combine_glitch_score, rank_order
    from glitchview.core.verify.probing import load_probe_model, verify_tokens
    from glitchview.core.verify.verdicts import Verdict, is_glitch

    print(f"Machine: {machine()}")
    _, gemma = scan("gemma3")
    ids = np.array([i for i, _, p in read_published(args.published) if gemma.table.pieces[i] == p])
    apart = gemma.known_unused
    ranked = int((~apart).sum())
    model, smol = scan("smollm2")
    probe = load_probe_model(model, "auto")
    store = VerdictStore(args.store)
    usable = ~smol.known_unused & ~smol.table.flags["no_token"]
    tops = [int(k) for k in args.top.split(",")]
    print(f"Gemma-3: {len(ids)} published verified tokens (pieces checked), {ranked} ranked tokens; SmolLM2: full test "
          f"({probe.dtype_name}) of each candidate's top {args.top}\n")
    print("| candidate | Gemma-3 recall top 1% / 2% / 5% | "
          + " | ".join(f"SmolLM2 P@{k} (uncertain)" for k in tops) + " |")
    print("|---|---|" + "---:|" * len(tops))
    for name, recipe in CANDIDATES.items():
        on_gemma = combine_glitch_score(gemma.scores, recipe)
        recall = recall_at(rank_order(on_gemma, "low", apart), ids, ranked, (0.01, 0.02, 0.05))
        order = np.argsort(combine_glitch_score(smol.scores, recipe), kind="stable")
        cells = []
        for k in tops:
            top = order[usable[order]][:k]
            verdicts = store.get(top, lambda unknown: verify_tokens(probe, unknown, "full").verdicts)
            cells.append(f"{is_glitch(verdicts).mean():.2f} ({int((verdicts == Verdict.UNCERTAIN).sum())})")
        print(f"| {name} | " + " / ".join(f"{r:.3f}" for r in recall) + " | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
