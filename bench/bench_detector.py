"""Does the learning detector find glitch tokens where it did not learn? Its precision@k on held-out tokens
beside every single indicator's, from the same run, against the full test.

The usable vocabulary (known-unused tokens and rows without a token left out) is split at random into two
halves. The detector learns only from the first: `learn` verifies `--budget` tokens of it (the tops of
every indicator and a random sample, then where the detector is least sure; fast screening confirmed by
the full test) and fits on them. Then every ranking (the detector, each indicator from its suspicious
end) is cut to the held-out half, and the union of their top k is verified with the full test. P@k counts
every token of the top k: uncertain and crashed tokens count as not glitch. The number of glitch tokens
found in the held-out half by any ranking bounds what a ranking could reach there.
Run: `python bench/bench_detector.py [--model smollm2] [--budget 400] [--k 50] [--kinds logistic,boosting]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--budget", type=int, default=400, help="tokens verified for learning")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--kinds", default="logistic,boosting", help="classifiers to compare (detector.CLASSIFIERS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    from glitchview.core.pipeline import scan
    from glitchview.core.scores.detector import fit_detector, learn
    from glitchview.core.verify.probing import load_probe_model, verify_tokens
    from glitchview.core.verify.verdicts import Verdict, is_glitch, summary

    print(f"Machine: {machine()}")
    model, analysis = scan(args.model)
    probe = load_probe_model(model, args.precision)
    usable = ~analysis.known_unused & ~analysis.table.flags["no_token"]
    held = usable & (np.random.default_rng(args.seed).random(len(analysis)) < 0.5)
    print(f"{args.model} ({probe.dtype_name}): {int(usable.sum())} usable tokens, {int(held.sum())} held out")

    verdicts = analysis.ensure_verdicts()

    def verify(ids: np.ndarray) -> None:
        result = verify_tokens(probe, ids, "fast")  # screening, confirmed by the full test
        verdicts.record(result.ids, result.verdicts, result.max_prob, result.reasons)

    kinds = args.kinds.split(",")
    start = time.perf_counter()
    first = learn(analysis, verify, args.budget, held, args.seed, args.k, kinds[0])
    learnt = verdicts.verdict.copy()
    print(f"learning: {args.budget} tokens verified in {time.perf_counter() - start:.0f} s ({summary(learnt)}); "
          f"fitted on {first.n_train} decided tokens, {first.n_glitch} glitch")
    scores = {f"detector ({kinds[0]})": first.scores}
    for kind in kinds[1:]:
        scores[f"detector ({kind})"] = fit_detector(analysis, learnt, args.k, seed=args.seed, kind=kind).scores
    orders = {name: np.argsort(-s, kind="stable") for name, s in scores.items()}
    orders.update({f"{name} ({analysis.suspicious_end(name)} end)": analysis.ranking(name).order
                   for name in analysis.scores})
    tops = {name: order[held[order]][: args.k] for name, order in orders.items()}

    checked = np.unique(np.concatenate(list(tops.values())))
    start = time.perf_counter()
    truth = verify_tokens(probe, checked, "full")
    print(f"held-out check: the union of the top {args.k}s, {len(checked)} tokens, full test in "
          f"{time.perf_counter() - start:.0f} s ({summary(truth.verdicts)})")
    verdict_of = dict(zip(truth.ids.tolist(), truth.verdicts.tolist()))
    found = int(is_glitch(truth.verdicts).sum())
    print(f"glitch tokens found in the held-out half by any ranking: {found} (at most {found / args.k:.2f} "
          f"reachable at P@{args.k} by what was checked)\n")
    print(f"| ranking (held-out half) | P@{args.k} | glitch | uncertain | normal | crash |\n|---|---:|---:|---:|---:|---:|")
    for name, top in sorted(tops.items(), key=lambda item: -is_glitch(np.array([verdict_of[i] for i in item[1]])).sum()):
        codes = np.array([verdict_of[i] for i in top.tolist()])
        n = {v: int((codes == v).sum()) for v in (Verdict.UNCERTAIN, Verdict.NORMAL, Verdict.CRASH)}
        glitch = int(is_glitch(codes).sum())
        print(f"| {name} | {glitch / args.k:.2f} | {glitch} | {n[Verdict.UNCERTAIN]} | {n[Verdict.NORMAL]} | "
              f"{n[Verdict.CRASH]} |")
    if first.weights:
        print("\nlargest weights (logistic, standardised): "
              + ", ".join(f"{name} {w:+.2f}" for name, w in first.weights))


if __name__ == "__main__":
    main()
