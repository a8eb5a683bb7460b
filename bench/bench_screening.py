"""Is a screened verdict as good as the full test? The fast -> confirm pipeline (fast screening, then the
full test on its suspects, as `verify_tokens(..., "fast")` runs it) against the full test on every
token of one set: the top suspects of the recommended score plus random ordinary tokens.
Reports the false-glitch rate (pipeline glitch where the full test says normal, per normal token),
the glitch tokens the screening lets through as normal, and the time of each route, from the same run.
Run: `python bench/bench_screening.py [--model smollm2] [--top 500] [--sample 500]` (1,000 tokens)."""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--top", type=int, default=500, help="top suspects of glitch_score")
    parser.add_argument("--sample", type=int, default=500, help="random ordinary tokens")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    from bench_truth import machine

    from glitchview.core.analysis import DEFAULT_INDICATOR
    from glitchview.core.pipeline import scan
    from glitchview.core.verify.probing import load_probe_model, verify_tokens
    from glitchview.core.verify.quality import verification_ids
    from glitchview.core.verify.verdicts import Verdict, is_glitch, summary

    print(f"Machine: {machine()}")
    model, analysis = scan(args.model)
    probe = load_probe_model(model, args.precision)
    ids, _ = verification_ids(analysis, [DEFAULT_INDICATOR], args.top, args.sample)
    print(f"{args.model}, {probe.dtype_name}: {len(ids)} tokens (top {args.top} of {DEFAULT_INDICATOR} + "
          f"{args.sample} random ordinary tokens)")

    start = time.perf_counter()
    full = verify_tokens(probe, ids, "full")
    full_s = time.perf_counter() - start
    start = time.perf_counter()
    piped = verify_tokens(probe, ids, "fast")
    piped_s = time.perf_counter() - start
    screen = verify_tokens(probe, ids, "fast", confirm=False)

    full_glitch, piped_glitch = is_glitch(full.verdicts), is_glitch(piped.verdicts)
    full_normal = full.verdicts == Verdict.NORMAL
    suspects = screen.verdicts == Verdict.SUSPECT
    assert not is_glitch(screen.verdicts).any(), "a screening produced a glitch verdict"
    print(f"full test:     {summary(full.verdicts)}  ({full_s:.1f} s, {len(ids) / full_s:.1f} tokens/s)")
    print(f"fast->confirm: {summary(piped.verdicts)}  ({piped_s:.1f} s, {len(ids) / piped_s:.1f} tokens/s; "
          f"{int(suspects.sum())} suspects confirmed)")
    print(f"screening alone (--no-confirm): {summary(screen.verdicts)}")
    false_glitch = int((piped_glitch & full_normal).sum())
    print(f"false glitch: {false_glitch} of {int(full_normal.sum())} normal tokens "
          f"({false_glitch / max(int(full_normal.sum()), 1):.2%})")
    missed = ids[full_glitch & ~piped_glitch]
    print(f"glitch tokens (full) the pipeline does not call glitch: {len(missed)} of {int(full_glitch.sum())}"
          + (f": {[analysis.table.texts[i] for i in missed[:10]]}" if len(missed) else ""))
    print(f"agreement of verdicts: {(full.verdicts == piped.verdicts).mean():.1%}")


if __name__ == "__main__":
    main()
