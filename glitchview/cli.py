"""Headless command line over the same pipeline as the GUI: `glitchview scan MODEL ...`.

Errors a user can cause (unknown model, corrupt file, no embedding matrix, bad option) print one
line and exit non-zero; set GLITCHVIEW_DEBUG=1 to see tracebacks of unexpected failures."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import NoReturn, TextIO

import numpy as np

from . import __version__
from .core.analysis import DEFAULT_INDICATOR, Analysis
from .core.errors import Cancelled, GlitchViewError, one_line
from .core.model.sources import DEFAULT_MODEL, DEMO_MODELS, demo_installed
from .core.progress import sub_progress
from .core.scores.indicators import INDICATORS, short_name
from .core.store.text import display_width, escape_text

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
TOKEN_WIDTH = 28


class StepBars:
    """One progress bar line per pipeline step on stderr (messages are 'Step: detail')."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream, self.width = stream or sys.stderr, width
        self.tty = self.stream.isatty()
        self.step, self.detail, self.fraction = "", "", 0.0
        self.step_start = self.last_draw = time.monotonic()

    def __call__(self, fraction: float, message: str) -> None:
        step, _, detail = message.partition(": ")
        if step != self.step:
            self.close()
            self.step, self.step_start = step, time.monotonic()
        self.detail, self.fraction = detail, fraction
        if self.tty and time.monotonic() - self.last_draw > 0.1:
            self._draw("\r")
            self.last_draw = time.monotonic()

    def _draw(self, prefix: str, end: str = "") -> None:
        filled = int(round(self.fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.step_start
        line = f"{self.step:<22} [{bar}] {self.fraction:4.0%} {elapsed:6.1f}s  {self.detail}"
        self.stream.write(f"{prefix}{line[:150]:<150}{end}" if self.tty else f"{line}{end}")
        self.stream.flush()

    def close(self) -> None:
        if self.step:
            self._draw("\r" if self.tty else "", "\n")
        self.step = ""


def _cell(text: str, width: int) -> str:
    escaped = escape_text(text)
    out, used = "", 0
    for char in escaped:
        w = display_width(char)
        if used + w > width - 1 and len(out) < len(escaped):
            return out + "…" + " " * (width - used - 1)
        out, used = out + char, used + w
    return out + " " * (width - used)


def format_table(analysis: Analysis, ids: np.ndarray, indicator: str) -> str:
    """A fixed-width table of tokens: rank, id, token, category, cluster and every indicator."""
    names = [indicator, *(n for n in analysis.scores if n != indicator)]
    short = {n: short_name(n) for n in names}
    head = f"{'rank':>5} {'id':>7}  {'token':<{TOKEN_WIDTH}} {'category':<15} {'cluster':>7} " + \
        " ".join(f"{short[n]:>14}" for n in names)
    lines = [head, "-" * len(head)]
    categories = analysis.table.category_names()
    for rank, i in enumerate(ids, 1):
        token = _cell(analysis.table.texts[i], TOKEN_WIDTH)
        scores = " ".join(f"{analysis.scores[n][i]:>14.6g}" for n in names)
        lines.append(f"{rank:>5} {i:>7}  {token} {categories[i]:<15} {int(analysis.labels[i]):>7} {scores}")
    return "\n".join(lines)


def _print_summary(analysis: Analysis, out: TextIO) -> None:
    m = analysis.model
    out.write(f"\nModel: {escape_text(m.title)} [{escape_text(m.architecture)}], {m.n_tokens} tokens x "
              f"{m.dim} dims, {'tied' if m.tied else 'untied'} embeddings, fingerprint {m.fingerprint}\n")
    for note in m.notes:  # notes name files and tokens: shown escaped, like every token string
        out.write(f"Note: {escape_text(note)}\n")
    out.write(f"Clusters: k={len(analysis.centers)}, inertia {analysis.inertia:.6g}\n")
    out.write(f"Reference unused tokens: {analysis.reference.rule}\n")
    counts = ", ".join(f"{name} {int(mask.sum())}" for name, mask in analysis.table.flags.items() if mask.any())
    out.write(f"Token flags: {counts or 'none'}\n")
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in analysis.timings.items())
    out.write(f"Timings: {timing}\n")


MAX_SEED = 2**32 - 1  # numpy's and k-means' seeds are 32-bit
MAX_ID = 2**31 - 1


def _integer(text: str, what: str, low: int, high: int) -> int:
    """An integer option within [low, high], or an argument error that says which values are allowed."""
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _count(text: str) -> int:
    """A positive count (--top): zero or a negative number is an argument error."""
    return _integer(text, "a positive whole number", 1, MAX_ID)


def _clusters(text: str) -> int:
    """k for k-means: at least 1, at most what an analysis file may hold (a marker per centre is drawn)."""
    from .core.store.analysis_checks import MAX_CLUSTERS

    return _integer(text, f"a number of clusters from 1 to {MAX_CLUSTERS}", 1, MAX_CLUSTERS)


def _amount(text: str) -> int:
    """A count where zero means none (--sample, --show)."""
    return _integer(text, "a whole number, 0 or more", 0, MAX_ID)


def _seed(text: str) -> int:
    return _integer(text, f"a seed between 0 and {MAX_SEED}", 0, MAX_SEED)


def _parse_ids(text: str) -> list[int]:
    """Comma-separated token ids; a negative id is an argument error (it would name a row from the end)."""
    parts = [part for part in text.replace(" ", "").split(",") if part]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated token ids, got '{text}'")
    return [_integer(part, f"comma-separated token ids (0 to {MAX_ID})", 0, MAX_ID) for part in parts]


def _check_paths(args: argparse.Namespace) -> None:
    """Each file a command writes must differ from the others and from the file it reads (`export
    A.gva.npz --out A.gva.npz` would overwrite the analysis with its own CSV)."""
    from .core.store.files import refuse_overwriting

    reads = [args.session] if args.command == "export" else []
    writes = [p for p in (getattr(args, "out", None), getattr(args, "filter_list", None),
                          None if reads else getattr(args, "session", None)) if p is not None]
    for k, path in enumerate(writes):
        refuse_overwriting(path, *reads, *writes[:k])


class UsageError(GlitchViewError):
    """A command-line argument is wrong (reported in one line, exit status 2, like every user error)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an argument error is one line of ours instead of a usage dump and an exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def cmd_scan(args: argparse.Namespace) -> int:
    from .core.pipeline import ScanSettings, scan
    from .core.store import analysis_cache
    from .core.store.analysis_file import save_analysis
    from .core.store.export import write_csv

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


def format_quality(analysis: Analysis, verdicts: np.ndarray, sample: np.ndarray, top: int) -> str:
    """The indicator-quality table (`quality_table`, as the window shows it) as fixed-width text."""
    from .core.verify.quality import KS, quality_table

    ks = tuple(k for k in KS if k <= top) or (top,)
    table = quality_table(analysis, verdicts, ks, sample)
    widths = [max(len(c), *(len(r[i]) for r in table.rows)) for i, c in enumerate(table.columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    head = line(table.columns)
    return "\n".join([head, "-" * len(head), *(line(r) for r in table.rows), *table.notes])


def _saved_or_new_analysis(model, args: argparse.Namespace, progress) -> tuple[Analysis, str]:
    """The analysis to verify against: the one saved in `--session FILE` when it exists (refused if
    it was made for another version of the model), else a new one. Returns it and where it came from."""
    from .core.pipeline import ScanSettings, analyse
    from .core.store import analysis_cache
    from .core.store.analysis_file import load_analysis

    if args.session and Path(args.session).exists():
        analysis = load_analysis(args.session)
        if analysis.model.fingerprint != model.fingerprint:
            raise GlitchViewError(f"{args.session} holds an analysis of another model or version (fingerprint "
                                  f"{analysis.model.fingerprint}, the model has {model.fingerprint}); "
                                  f"choose another --session file")
        return analysis, f"reused the analysis saved in {args.session}"
    cached = analysis_cache.load_cached(model.fingerprint)
    if cached is not None:
        return cached.analysis, f"reused its last analysis (computed {cached.computed_at}, from the analysis cache)"
    analysis = analyse(model, args.model, ScanSettings(clusters=args.clusters, seed=args.seed), progress)
    analysis_cache.store(analysis, new=True)
    return analysis, "analysed the model"


def cmd_verify(args: argparse.Namespace) -> int:
    from .core import operations
    from .core.model.vocab import cached_token_table
    from .core.pipeline import open_model
    from .core.session import Session
    from .core.store.analysis_file import save_analysis
    from .core.store.export import write_csv, write_filter_list
    from .core.verify.probing import load_probe_model, verify_tokens
    from .core.verify.quality import verification_ids
    from .core.verify.taxonomy import TAXONOMY, classify_tokens
    from .core.verify.verdicts import LABELS, Verdict, is_glitch, summary

    # --ids alone needs only the model; --top, --out, --filter-list and --session need an analysis,
    # taken from the --session file when it holds one of this model
    needs_analysis = not args.ids or bool(args.out or args.filter_list or args.session)
    bars = StepBars()
    try:
        model = open_model(args.model, sub_progress(bars, 0.0, 0.3))
        bars(0.3, f"Load network: building {model.source.display_name} for generation")
        probe = load_probe_model(model, args.precision)  # an encoder fails here, before any work
        analysis, origin = _saved_or_new_analysis(model, args, sub_progress(bars, 0.3, 1.0)) if needs_analysis \
            else (None, "no analysis needed")
        table = analysis.table if analysis else cached_token_table(model.folder, model.fingerprint,
                                                                   model.input_embeddings.shape[0])
        indicators = list(INDICATORS) if args.indicator == "all" else [args.indicator]
        if args.ids:
            ids, sample = np.asarray(args.ids, dtype=np.int64), np.zeros(0, dtype=np.int64)
        else:
            ids, sample = verification_ids(analysis, indicators, args.top, args.sample, args.seed)
        if analysis is None:  # nothing to record the verdicts in: the test alone
            result = verify_tokens(probe, ids, args.mode, progress=bars, confirm=not args.no_confirm)
        else:  # the window's operation, on a session of this model and its analysis
            session = Session(analysis, model=model)
            session.adopt_model(model, probe)
            verified = operations.verify(session.snapshot("verify"), ids, args.mode, bars, confirm=not args.no_confirm)
            session.apply(verified)
            result = verified.verification
    finally:
        bars.close()
    out = sys.stdout
    out.write(f"\nModel {model.source.display_name}: {origin}\n")
    out.write(f"Verified {len(ids)} tokens ({result.mode}; {probe.dtype_name}) in {result.seconds:.1f} s: "
              f"{result.tokens_per_second:.1f} tokens/s\n")
    out.write(f"Verdicts: {summary(result.verdicts)}\n")
    if args.no_confirm and (result.verdicts == Verdict.SUSPECT).any():
        out.write("Suspects are screening results, NOT verified: run without --no-confirm for their verdict\n")
    max_prob = dict(zip(result.ids.tolist(), result.max_prob.tolist()))
    glitch = result.ids[is_glitch(result.verdicts)]
    glitch = glitch[np.argsort([max_prob[i] for i in glitch.tolist()], kind="stable")]
    verdict_of = dict(zip(result.ids.tolist(), result.verdicts.tolist()))
    reason_of = dict(zip(result.ids.tolist(), result.reasons))
    shown = glitch[: args.show]
    out.write(f"\nVerified glitch tokens (lowest probability first, {len(glitch)} in all):\n")
    for i, code in zip(shown.tolist(), classify_tokens(table, shown)):
        out.write(f"{i:>7}  {_cell(table.texts[i], TOKEN_WIDTH)} {max_prob[i]:>10.3g}  "
                  f"{LABELS[verdict_of[i]]:<14} {TAXONOMY[code]}\n")
    for i in result.ids[result.verdicts == Verdict.CRASH][: args.show].tolist():
        out.write(f"crash {i}: {reason_of[i]}\n")
    if analysis is None:
        return 0
    verdicts = analysis.ensure_verdicts()
    if not args.ids:
        out.write(f"\nIndicator quality against these verdicts (top {args.top} of each indicator verified):\n")
        out.write(format_quality(analysis, verdicts.verdict, sample, args.top) + "\n")
    if args.out:
        indicator = indicators[0] if args.indicator != "all" else DEFAULT_INDICATOR
        rows = write_csv(analysis, args.out, result.ids[result.ids < len(analysis)], indicator)
        out.write(f"\nWrote {rows} verified tokens to {args.out}\n")
    if args.filter_list:
        listed = write_filter_list(analysis, args.filter_list)
        out.write(f"Wrote a filter list of {listed} glitch tokens to {args.filter_list}\n")
    if args.session:
        save_analysis(analysis, args.session)
        out.write(f"Saved the analysis to {args.session}\n")
    return 0


def cmd_hunt(args: argparse.Namespace) -> int:
    """Verify `--budget` informative tokens, fit the learning detector, verify the top of its new ranking."""
    from .core.pipeline import open_model
    from .core.scores.detector import fit_detector, pick_to_verify
    from .core.store.analysis_file import save_analysis
    from .core.verify.probing import load_probe_model, verify_tokens
    from .core.verify.verdicts import is_glitch, is_verified, summary

    bars = StepBars()
    try:
        model = open_model(args.model, sub_progress(bars, 0.0, 0.2))
        probe = load_probe_model(model, args.precision)
        analysis, origin = _saved_or_new_analysis(model, args, sub_progress(bars, 0.2, 0.4))
        verdicts = analysis.ensure_verdicts()
        ids = pick_to_verify(analysis, args.budget, is_verified(verdicts.verdict), args.seed)
        learn = verify_tokens(probe, ids, "fast", sub_progress(bars, 0.4, 0.8))
        verdicts.record(learn.ids, learn.verdicts, learn.max_prob, learn.reasons)
        detector = fit_detector(analysis, verdicts.verdict, args.check, seed=args.seed)
        order = np.argsort(-detector.scores, kind="stable")
        fresh = order[~is_verified(verdicts.verdict)[order] & ~analysis.known_unused[order]][: args.check]
        check = verify_tokens(probe, fresh, "full", sub_progress(bars, 0.8, 1.0))
        verdicts.record(check.ids, check.verdicts, check.max_prob, check.reasons)
    finally:
        bars.close()
    out = sys.stdout
    out.write(f"\nModel {model.source.display_name}: {origin}\n")
    out.write(f"Verified {len(ids)} chosen tokens ({learn.mode}, {learn.seconds:.0f} s): {summary(learn.verdicts)}\n")
    out.write(f"Detector fitted on {detector.n_train} decided tokens ({detector.n_glitch} glitch); largest weights: "
              + ", ".join(f"{name} {w:+.2f}" for name, w in detector.weights) + "\n")
    out.write(f"\nPrecision@{args.check} among held-out verified tokens (out-of-fold ranking of the same tokens):\n")
    for name, precision in sorted(detector.held_out.items(), key=lambda item: -item[1]):
        out.write(f"  {name:<28} {precision:.2f}\n")
    found = int(is_glitch(check.verdicts).sum())
    out.write(f"\nTop {len(fresh)} of the detector's new ranking, never verified before, full test: {found} glitch "
              f"(precision {found / max(len(fresh), 1):.2f}); {summary(check.verdicts)}\n")
    for i in fresh[is_glitch(check.verdicts)][: args.show].tolist():
        out.write(f"{i:>7}  {_cell(analysis.table.texts[i], TOKEN_WIDTH)} P(glitch) {detector.scores[i]:.2f}\n")
    if args.session:
        save_analysis(analysis, args.session)
        out.write(f"Saved the analysis and its verdicts to {args.session} (run hunt again on it to learn more)\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .core.store.analysis_file import load_analysis
    from .core.store.export import write_csv, write_json
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


def cmd_corpus(args: argparse.Namespace) -> int:
    from .core.pipeline import ScanSettings, analyse, open_model
    from .core.scores.corpus import count_model_corpus
    from .core.store.analysis_file import load_analysis, save_analysis

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
    from .core.research_operations import analysis_of
    from .core.scores.compare import compare
    from .core.store.comparison_csv import write_comparison

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
    from .core.research_operations import analysis_of
    from .core.store.report import write_report

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


def cmd_gui(args: argparse.Namespace) -> int:
    from .gui.app import main as gui_main

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="glitchview", description="Find, map and verify glitch tokens.")
    parser.add_argument("--version", action="version", version=f"glitchview {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check the installation (packages, Qt, torch, demo model) and analyse a tiny model offscreen")
    sub = parser.add_subparsers(dest="command")

    scan_p = sub.add_parser("scan", help="load a model, score every token, cluster, project; print suspects")
    scan_p.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"demo name ({', '.join(DEMO_MODELS)}), a Hugging Face folder or a .gguf file")
    scan_p.add_argument("--clusters", "-k", type=_clusters, default=20, help="k-means clusters (default 20)")
    scan_p.add_argument("--indicator", default=DEFAULT_INDICATOR, choices=list(INDICATORS),
                        help=f"indicator to rank by (default {DEFAULT_INDICATOR}, the recommended score; "
                             f"cluster_distance is the seed's)")
    scan_p.add_argument("--end", choices=["low", "high", "both"], default="both",
                        help="which end of the indicator to list (default both, suspicious end first; "
                             "the CSV is ranked from the first)")
    scan_p.add_argument("--top", type=_count, default=20, help="how many suspects to print (default 20)")
    scan_p.add_argument("--out", type=Path, help="write a CSV of all tokens, ranked (see --out-top)")
    scan_p.add_argument("--out-top", action="store_true", help="write only the top N to the CSV")
    scan_p.add_argument("--session", type=Path, help="save the analysis to this file (.gva.npz)")
    scan_p.add_argument("--umap", action="store_true", help="also compute the UMAP projection")
    scan_p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    scan_p.add_argument("--reference-ids", type=_parse_ids,
                        help="comma-separated ids of known unused tokens (overrides the automatic rule)")
    scan_p.set_defaults(func=cmd_scan)

    ver_p = sub.add_parser("verify", help="verify suspects by the model's own behaviour (repetition test)")
    ver_p.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="as for scan")
    ver_p.add_argument("--top", type=_count, default=100, help="verify the top N of the indicator(s) (default 100)")
    ver_p.add_argument("--indicator", default="all", choices=["all", *INDICATORS],
                       help="whose top N to verify (default all, which also measures each indicator)")
    ver_p.add_argument("--sample", type=_amount, default=100,
                       help="also verify this many random ordinary tokens, the base rate (default 100)")
    ver_p.add_argument("--ids", type=_parse_ids,
                       help="verify exactly these token ids instead (needs only the model: no analysis is run "
                            "unless --out, --filter-list or --session asks for one)")
    ver_p.add_argument("--mode", choices=["full", "fast"], default="full",
                       help="full: the repetition prompts; fast: one short screening prompt, whose suspects "
                            "then get the full test (see --no-confirm)")
    ver_p.add_argument("--no-confirm", action="store_true",
                       help="fast mode: skip the full test of the suspects (they stay 'suspect', unverified)")
    ver_p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                       help="network precision (auto: bfloat16 where the CPU has bf16 matrix units)")
    ver_p.add_argument("--clusters", "-k", type=_clusters, default=20)
    ver_p.add_argument("--seed", type=_seed, default=0)
    ver_p.add_argument("--show", type=_amount, default=20, help="how many glitch tokens to list (default 20)")
    ver_p.add_argument("--out", type=Path, help="write the verified tokens to this CSV")
    ver_p.add_argument("--filter-list", type=Path, help="write the verified glitch tokens as a JSON filter list")
    ver_p.add_argument("--session", type=Path,
                       help="analysis file: reused when it exists (same model), else written; verdicts are saved in it")
    ver_p.set_defaults(func=cmd_verify)

    hunt_p = sub.add_parser("hunt", help="verify informative tokens, learn a detector from them, re-rank the vocabulary")
    hunt_p.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="as for scan")
    hunt_p.add_argument("--budget", type=_count, default=300, help="tokens to verify for learning (default 300)")
    hunt_p.add_argument("--check", type=_count, default=50,
                        help="verify this many of the new ranking's top (never verified) tokens: its precision")
    hunt_p.add_argument("--session", type=Path,
                        help="analysis file: reused with its verdicts when it exists, then saved (hunt again to learn more)")
    hunt_p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto")
    hunt_p.add_argument("--clusters", "-k", type=_clusters, default=20)
    hunt_p.add_argument("--seed", type=_seed, default=0)
    hunt_p.add_argument("--show", type=_amount, default=20, help="how many new glitch tokens to list")
    hunt_p.set_defaults(func=cmd_hunt)

    exp_p = sub.add_parser("export", help="export tokens of a saved analysis to CSV or JSON")
    exp_p.add_argument("session", type=Path, help="an analysis file written by scan --session")
    exp_p.add_argument("--out", type=Path, required=True, help="output file (.csv or .json)")
    exp_p.add_argument("--indicator", choices=list(INDICATORS), help="indicator to rank by")
    exp_p.add_argument("--end", choices=["low", "high"], help="end of the indicator (default: suspicious)")
    group = exp_p.add_mutually_exclusive_group()
    group.add_argument("--top", type=_count, help="only the top N tokens")
    group.add_argument("--flagged", action="store_true", help="only the flagged tokens")
    exp_p.set_defaults(func=cmd_export)

    corpus_p = sub.add_parser("corpus", help="count every token of a corpus with the model's tokenizer")
    corpus_p.add_argument("model", help="as for scan")
    corpus_p.add_argument("paths", nargs="+", type=Path,
                          help=".txt, .jsonl, .parquet files, saved datasets folders, or folders of them")
    corpus_p.add_argument("--field", default="text", help="the text field of .jsonl / column of .parquet (default text)")
    corpus_p.add_argument("--workers", type=_count, help="child processes (default: one per core)")
    corpus_p.add_argument("--top", type=_count, default=10, help="how many of the most frequent tokens to list")
    corpus_p.add_argument("--session", type=Path,
                          help="keep the counts in this analysis file (made by a scan when it does not exist)")
    corpus_p.set_defaults(func=cmd_corpus)

    cmp_p = sub.add_parser("compare", help="compare two models (or analyses) that share a tokenizer, token by token")
    cmp_p.add_argument("a", help="model A: a model (as for scan) or an analysis file (.gva.npz)")
    cmp_p.add_argument("b", help="model B, the same")
    cmp_p.add_argument("--out", type=Path, help="write every token's scores, deltas and verdicts to this CSV")
    cmp_p.add_argument("--indicator", help="the indicator that decides 'under-trained' for unverified tokens "
                                           "(default: glitch_score when present, else unembedding_cosine)")
    cmp_p.add_argument("--share", type=float, default=0.02,
                       help="the suspicious share of that indicator counted as under-trained (default 0.02)")
    cmp_p.add_argument("--top", type=_count, default=10, help="how many tokens of each side to list")
    cmp_p.set_defaults(func=cmd_compare)

    rep_p = sub.add_parser("report", help="write a self-contained HTML (and Markdown) report of a model or analysis")
    rep_p.add_argument("target", help="a model (as for scan) or an analysis file (.gva.npz, with its verdicts)")
    rep_p.add_argument("--out", type=Path, required=True, help="the folder to write report.html, report.md into")
    rep_p.set_defaults(func=cmd_report)

    gui_p = sub.add_parser("gui", help="open the desktop window")
    gui_p.add_argument("target", nargs="?", default=DEFAULT_MODEL, help="a model or an analysis file")
    gui_p.set_defaults(func=cmd_gui)

    sub.add_parser("models", help="list the demo models and whether they are installed").set_defaults(
        func=cmd_models)
    sub.add_parser("indicators", help="list the indicators and their suspicious ends").set_defaults(
        func=cmd_indicators)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"glitchview: error: {escape_text(one_line(exc))} (see --help)", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.self_test:
        from .selftest import run

        return run()
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        _check_paths(args)
        return args.func(args)
    except Cancelled:
        print("glitchview: cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\nglitchview: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (GlitchViewError, ValueError, OSError) as exc:
        print(f"glitchview: error: {escape_text(one_line(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug: still one line unless debugging
        if os.environ.get("GLITCHVIEW_DEBUG"):
            traceback.print_exc()
        print(f"glitchview: unexpected error ({type(exc).__name__}): {escape_text(one_line(exc))}", file=sys.stderr)
        return 1
