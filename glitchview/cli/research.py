"""Research commands: corpus frequency, comparison of two models, the per-model report."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..core.errors import GlitchViewError
from ..core.progress import sub_progress
from ..core.store.text import escape_text
from .output import TOKEN_WIDTH, StepBars, _cell


def cmd_corpus(args: argparse.Namespace) -> int:
    from ..core.pipeline import ScanSettings, analyse, open_model
    from ..core.scores.corpus import count_model_corpus
    from ..core.store.analysis_file import load_analysis, save_analysis

    bars = StepBars()
    try:
        model = open_model(args.model, sub_progress(bars, 0.0, 0.1))
        analysis = None
        if args.session and args.session.exists():
            analysis = load_analysis(args.session)
            if analysis.model.fingerprint != model.fingerprint:
                raise GlitchViewError(f"{args.session} is an analysis of another model ({analysis.model.title}, "
                                      f"fingerprint {analysis.model.fingerprint}); {args.model} has {model.fingerprint}")
        counts = count_model_corpus(model, args.paths, args.field, args.workers, sub_progress(bars, 0.1, 0.8))
        if args.session and analysis is None:
            analysis = analyse(model, args.model, ScanSettings(), sub_progress(bars, 0.8, 1.0))
    finally:
        bars.close()
    out = sys.stdout
    out.write(f"\nCorpus: {counts.summary()}\n")
    for note in counts.skipped[:10]:
        out.write(f"Skipped: {escape_text(note)}\n")
    top = np.argsort(-counts.counts, kind="stable")[: args.top]
    out.write(f"\nMost frequent {len(top)} tokens:\n")
    for i in top:
        out.write(f"{i:>7}  {_cell(model.tokenizer.decode([int(i)]), TOKEN_WIDTH)} "
                  f"{counts.counts[i]:>12,} {counts.per_million()[i]:>12.1f} per million\n")
    if analysis is not None:
        analysis.set_corpus(counts)
        save_analysis(analysis, args.session)
        out.write(f"Saved the counts with the analysis in {args.session}\n")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..core.research_operations import analysis_of
    from ..core.scores.compare import compare
    from ..core.store.comparison_csv import write_comparison

    bars = StepBars()
    try:
        a = analysis_of(args.a, sub_progress(bars, 0.0, 0.5))
        b = analysis_of(args.b, sub_progress(bars, 0.5, 1.0))
    finally:
        bars.close()
    comparison = compare(a, b, args.indicator, args.share)
    out = sys.stdout
    out.write(f"\n{escape_text(comparison.summary())}\n")
    delta = comparison.deltas[comparison.indicator]
    for title, mask in (("B, not in A", comparison.only_b), ("A, not in B", comparison.only_a)):
        ids = np.flatnonzero(mask)
        out.write(f"\nUnder-trained in {title} ({len(ids)}; first {min(len(ids), args.top)} by |delta|):\n")
        for i in ids[np.argsort(-np.abs(delta[ids]), kind="stable")][: args.top]:
            out.write(f"{i:>7}  {_cell(a.table.texts[i], TOKEN_WIDTH)} delta {comparison.indicator} {delta[i]:+.4g}\n")
    if args.out:
        rows = write_comparison(a, comparison, args.out)
        out.write(f"\nWrote {rows} tokens to {args.out}\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..core.research_operations import analysis_of
    from ..core.store.report import write_report

    bars = StepBars()
    start = time.perf_counter()
    try:
        analysis = analysis_of(args.target, sub_progress(bars, 0.0, 0.5))
        report_start = time.perf_counter()
        html_path, md_path = write_report(analysis, args.out, sub_progress(bars, 0.5, 1.0))
    finally:
        bars.close()
    print(f"Wrote {html_path} and {md_path} in {time.perf_counter() - report_start:.1f} s "
          f"({time.perf_counter() - start:.1f} s with the analysis)")
    return 0


