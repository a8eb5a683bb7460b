"""Commands that analyse and list: scan (the whole pipeline), export of a saved analysis, the
demo models, the indicators, and opening the window."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..core.analysis import DEFAULT_INDICATOR
from ..core.errors import GlitchViewError
from ..core.model.sources import DEFAULT_MODEL, DEMO_MODELS, demo_installed
from ..core.scores.indicators import INDICATORS
from .output import StepBars, _print_summary, format_table


def cmd_scan(args: argparse.Namespace) -> int:
    from ..core.pipeline import ScanSettings, scan
    from ..core.store import analysis_cache
    from ..core.store.analysis_file import save_analysis
    from ..core.store.export import write_csv

    settings = ScanSettings(clusters=args.clusters, seed=args.seed, indicator=args.indicator,
                            projections=("pca", "umap") if args.umap else ("pca",),
                            reference_ids=args.reference_ids)
    bars = StepBars()
    try:
        _, analysis = scan(args.model, settings, progress=bars)
    finally:
        bars.close()
    if analysis_cache.load_cached(analysis.model.fingerprint) is None:  # never over the window's flags
        analysis_cache.store(analysis, new=True)
    out = sys.stdout
    _print_summary(analysis, out)
    indicator = INDICATORS[args.indicator]
    other = "high" if indicator.suspicious == "low" else "low"
    ends = [indicator.suspicious, other] if args.end == "both" else [args.end]
    for end in ends:
        out.write(f"\nTop {args.top} by {indicator.name}, {end} end ({indicator.end_label(end)}): "
                  f"{indicator.description}\n")
        out.write(format_table(analysis, analysis.top(args.indicator, args.top, end), args.indicator) + "\n")
    if args.out:
        ids = analysis.top(args.indicator, args.top if args.out_top else len(analysis), ends[0])
        rows = write_csv(analysis, args.out, ids, args.indicator, ends[0])
        out.write(f"\nWrote {rows} tokens to {args.out}\n")
    if args.session:
        save_analysis(analysis, args.session)
        out.write(f"Saved the analysis to {args.session}\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..core.store.analysis_file import load_analysis
    from ..core.store.export import write_csv, write_json
    analysis = load_analysis(args.session)
    indicator = args.indicator or analysis.settings.get("indicator", DEFAULT_INDICATOR)
    if indicator not in analysis.scores:
        raise GlitchViewError(f"the analysis has no indicator '{indicator}'")
    if args.flagged:
        ids = np.flatnonzero(analysis.flagged)
    else:
        ids = analysis.top(indicator, args.top or len(analysis), args.end)
    writer = write_json if args.out.suffix.lower() == ".json" else write_csv
    rows = writer(analysis, args.out, ids, indicator, args.end)
    print(f"Wrote {rows} tokens to {args.out}")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    from ..gui.app import main as gui_main

    return gui_main([args.target])


def cmd_models(args: argparse.Namespace) -> int:
    for demo in DEMO_MODELS.values():
        state = "installed" if demo_installed(demo.name) else f"not installed ({demo.install})"
        default = " (default)" if demo.name == DEFAULT_MODEL else ""
        print(f"{demo.name:<8} {demo.title:<42} {demo.vocab_size:>7} tokens x {demo.dim:<4} "
              f"{demo.download_mb:>4} MB  {state}{default}")
    return 0


def cmd_indicators(args: argparse.Namespace) -> int:
    for ind in INDICATORS.values():
        recommended = " (recommended, the default)" if ind.name == DEFAULT_INDICATOR else ""
        print(f"{ind.name:<24} suspicious: {ind.suspicious:<5} {ind.description}{recommended}")
        for label in ind.ends.values():
            print(f"{'':<37}{label}")
    return 0


