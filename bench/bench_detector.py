"""Does the learning detector find glitch tokens where it did not learn? Its precision@k on held-out tokens
beside every single indicator's (and the token-structure ranking alone), from the same run, against the
full test.

The usable vocabulary (known-unused tokens and rows without a token left out) is split at random into two
halves. The detector learns only from the first: `learn` verifies `--budget` tokens of it (the tops of
every indicator and of the most fragment-like tokens and a random sample, then where the detector is least
sure; fast screening confirmed by the full test) and fits on them. Then every ranking (the detectors, each
indicator from its suspicious end, `fragment_likeness`) is cut to the held-out half and its top k checked.
P@k counts every token of the top k: uncertain and crashed tokens count as not glitch. Second view, what a
user of `hunt` sees: each ranking's top `--new` over the whole vocabulary among the tokens not verified
for learning.

Verdicts come from the model: the tokens each run needs are verified live (learning: screening confirmed
by the full test; checks: the full test). With `--store FILE` every verdict is kept in FILE and a token
already there is looked up, so further splits (`--seeds`) and reruns verify only what is new; `--screen N`
first adds N more tokens of a fixed random order of the usable vocabulary (screening, suspects confirmed by
the full test: a token the screening calls normal the full test calls normal too, its prompts include the
screening's), a uniform sample from which the number of glitch tokens in the held-out half is estimated:
what bounds any ranking's P@k there.
Run: `python bench/bench_detector.py [--model smollm2] [--budget 400] [--kinds logistic,boosting]
[--store FILE] [--screen N] [--seeds 0,1,2]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine

KS = (10, 25, 50)
CHUNK = 2000


class VerdictStore:
    """Verdicts by token id, read from and written to an `.npz` file; `sampled` counts the tokens of the
    fixed random order (`uniform_order`) screened so far."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.verdicts, self.sampled = path, {}, 0
        if path is not None and path.exists():
            with np.load(path) as data:
                self.verdicts = dict(zip(data["ids"].tolist(), data["verdicts"].tolist()))
                self.sampled = int(data["sampled"])

    def get(self, ids: np.ndarray, verify) -> np.ndarray:
        """The verdicts of `ids`; `verify(unknown ids)` gives those not stored yet, which are then kept."""
        unknown = np.array([i for i in ids.tolist() if i not in self.verdicts], dtype=np.int64)
        if len(unknown):
            self.verdicts.update(zip(unknown.tolist(), verify(unknown).tolist()))
            self.save()
        return np.array([self.verdicts[i] for i in ids.tolist()], dtype=np.int8)

    def save(self) -> None:
        if self.path is not None:
            ids = np.fromiter(self.verdicts, dtype=np.int64, count=len(self.verdicts))
            np.savez(self.path, ids=ids, verdicts=np.array([self.verdicts[i] for i in ids.tolist()], dtype=np.int8),
                     sampled=np.array(self.sampled))


def uniform_order(usable: np.ndarray) -> np.ndarray:
    return np.random.default_rng(12345).permutation(np.flatnonzero(usable))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--budget", type=int, default=400, help="tokens verified for learning")
    parser.add_argument("--new", type=int, default=50, help="top new tokens checked per ranking (what hunt shows)")
    parser.add_argument("--kinds", default="logistic,boosting", help="classifiers to compare (detector.CLASSIFIERS)")
    parser.add_argument("--seeds", default="0", help="random splits, e.g. 0,1,2 (cheap with --truth)")
    parser.add_argument("--store", type=Path, help="verdicts file: looked up, extended, written")
    parser.add_argument("--screen", type=int, default=0, help="tokens to add to the uniform sample first")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    from glitchview.core.model.token_structure import add_token_structure, fragment_likeness
    from glitchview.core.pipeline import scan
    from glitchview.core.verify.probing import load_probe_model, verify_tokens
    from glitchview.core.verify.verdicts import summary

    print(f"Machine: {machine()}")
    model, analysis = scan(args.model)
    add_token_structure(analysis.table, model.tokenizer)
    probe = load_probe_model(model, args.precision)
    usable = ~analysis.known_unused & ~analysis.table.flags["no_token"]
    store = VerdictStore(args.store)

    def check(ids: np.ndarray, mode: str) -> np.ndarray:
        return store.get(ids, lambda unknown: verify_tokens(probe, unknown, mode).verdicts)

    order = uniform_order(usable)
    for begin in range(store.sampled, store.sampled + args.screen, CHUNK):
        began = time.perf_counter()
        check(order[begin:min(begin + CHUNK, store.sampled + args.screen)], "fast")
        store.sampled = min(begin + CHUNK, store.sampled + args.screen)
        store.save()
        print(f"  uniform sample: {store.sampled} tokens ({time.perf_counter() - began:.0f} s)", flush=True)
    sample = None
    if store.sampled:
        sample = order[: store.sampled]
        codes = store.get(sample, None)
        print(f"uniform sample: {len(sample)} of {int(usable.sum())} usable tokens, screened and confirmed by the "
              f"full test: {summary(codes)}")
    for seed in (int(s) for s in args.seeds.split(",")):
        run_split(analysis, usable, check, args, seed, fragment_likeness(analysis.table.structure, len(analysis)),
                  probe.dtype_name, sample)


def run_split(analysis, usable: np.ndarray, check, args, seed: int, fragments: np.ndarray, dtype: str,
              sample: np.ndarray | None) -> None:
    from glitchview.core.scores.detector import fit_detector, learn
    from glitchview.core.verify.verdicts import Verdict, is_glitch, is_verified, summary

    held = usable & (np.random.default_rng(seed).random(len(analysis)) < 0.5)
    print(f"\n## {args.model} ({dtype}), split seed {seed}: {int(usable.sum())} usable tokens, {int(held.sum())} "
          f"held out")
    analysis.verdicts = None
    verdicts = analysis.ensure_verdicts()

    def verify(ids: np.ndarray) -> None:
        codes = check(ids, "fast")  # screening, confirmed by the full test
        verdicts.record(ids, codes, np.full(len(ids), np.nan), [""] * len(ids))

    kinds = args.kinds.split(",")
    start = time.perf_counter()
    first = learn(analysis, verify, args.budget, held, seed, max(KS), kinds[0])
    learnt = verdicts.verdict.copy()
    print(f"learning: {args.budget} tokens verified in {time.perf_counter() - start:.0f} s ({summary(learnt)}); "
          f"fitted on {first.n_train} decided tokens, {first.n_glitch} glitch")
    scores = {f"detector ({kinds[0]})": first.scores}
    for kind in kinds[1:]:
        scores[f"detector ({kind})"] = fit_detector(analysis, learnt, max(KS), seed=seed, kind=kind).scores
    structure, analysis.table.structure = analysis.table.structure, {}  # the same labels, no structure columns
    for kind in kinds:
        scores[f"detector ({kind}), without structure"] = fit_detector(analysis, learnt, max(KS), seed=seed,
                                                                       kind=kind).scores
    analysis.table.structure = structure
    orders = {name: np.argsort(-s, kind="stable") for name, s in scores.items()}
    orders.update({f"{name} ({analysis.suspicious_end(name)} end)": analysis.ranking(name).order
                   for name in analysis.scores})
    orders["fragment_likeness (structure alone)"] = np.argsort(-fragments, kind="stable")
    fresh = usable & ~is_verified(learnt)
    tops = {name: order[held[order]][: max(KS)] for name, order in orders.items()}
    news = {name: order[fresh[order]][: args.new] for name, order in orders.items()}

    checked = np.unique(np.concatenate([*tops.values(), *news.values()]))
    start = time.perf_counter()
    verdict_of = dict(zip(checked.tolist(), check(checked, "full").tolist()))
    codes = np.array(list(verdict_of.values()))
    print(f"check: the union of every top {max(KS)} (held-out) and top {args.new} (new), {len(checked)} tokens, "
          f"full test or looked up in the store in {time.perf_counter() - start:.0f} s "
          f"({summary(codes)})")
    found = int(is_glitch(codes).sum()) + int(is_glitch(learnt).sum())
    if sample is not None:
        in_sample = is_glitch(check(sample[held[sample]], "fast"))
        print(f"uniform sample: {int(in_sample.sum())} glitch tokens in its {len(in_sample)} held-out tokens, about "
              f"{in_sample.mean() * held.sum():.0f} in the held-out half")
    print(f"glitch tokens found in this run (learning + checks): {found}\n")
    print(f"| ranking | held-out P@10 | P@25 | P@50 | glitch / uncertain / normal of the 50 | new top {args.new}: "
          f"P@{args.new} |\n|---|---:|---:|---:|---|---:|")
    rows = []
    for name, top in tops.items():
        labels = is_glitch(np.array([verdict_of[i] for i in top.tolist()]))
        top_codes = np.array([verdict_of[i] for i in top.tolist()])
        new_labels = is_glitch(np.array([verdict_of[i] for i in news[name].tolist()]))
        rows.append((labels[:50].mean(), name, [labels[:k].sum() / k for k in KS], int(labels.sum()),
                     int((top_codes == Verdict.UNCERTAIN).sum()), int((top_codes == Verdict.NORMAL).sum()),
                     new_labels.sum() / args.new))
    for _, name, precision, glitch, uncertain, normal, new in sorted(rows, key=lambda r: (-r[0], -r[6])):
        print(f"| {name} | " + " | ".join(f"{p:.2f}" for p in precision) + f" | {glitch} / {uncertain} / {normal} | "
              f"{new:.2f} |")
    if first.weights:
        print("\nlargest weights (logistic, standardised): "
              + ", ".join(f"{name} {w:+.2f}" for name, w in first.weights))


if __name__ == "__main__":
    main()
