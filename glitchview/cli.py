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
from .core.analysis import Analysis
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
    out = sys.stdout
    _print_summary(analysis, out)
    indicator = INDICATORS[args.indicator]
    other = "high" if indicator.suspicious == "low" else "low"
    ends = [indicator.suspicious, other] if args.end == "both" else [args.end]
    for end in ends:
        note = " (suspicious end)" if end == indicator.suspicious else " (other end)"
        out.write(f"\nTop {args.top} by {indicator.name}, {end} end{note}: {indicator.description}\n")
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
    from .core.verify.quality import KS, base_rate, indicator_quality

    ks = [k for k in KS if k <= top] or [top]
    rows = indicator_quality(analysis, verdicts, tuple(ks))
    head = f"{'indicator':<24} {'end':<5}" + "".join(f"{'P@' + str(k):>9}" for k in ks) + f"{'recall':>9}{'ROC-AUC':>9}"
    lines = [head, "-" * len(head)]
    for q in rows:
        cells = "".join(f"{q.precision_at[k]:>9.2f}" for k in ks)
        lines.append(f"{q.indicator:<24} {q.end:<5}{cells}{q.recall:>9.2f}{q.roc_auc:>9.3f}")
    lines.append(f"base rate (random sample of {len(sample)} ordinary tokens): {base_rate(verdicts, sample):.3f}")
    return "\n".join(lines)


def cmd_verify(args: argparse.Namespace) -> int:
    from .core.pipeline import ScanSettings, analyse, open_model
    from .core.store.analysis_file import save_analysis
    from .core.store.export import write_csv, write_filter_list
    from .core.verify.probing import load_probe_model, verify_tokens
    from .core.verify.quality import verification_ids
    from .core.verify.taxonomy import TAXONOMY, classify_tokens
    from .core.verify.verdicts import LABELS, Verdict, is_glitch, summary

    bars = StepBars()
    try:
        model = open_model(args.model, sub_progress(bars, 0.0, 0.3))
        bars(0.3, f"Load network: building {model.source.display_name} for generation")
        probe = load_probe_model(model, args.precision)  # an encoder fails here, before any work
        analysis = analyse(model, args.model, ScanSettings(clusters=args.clusters, seed=args.seed),
                           sub_progress(bars, 0.3, 1.0))
        indicators = list(INDICATORS) if args.indicator == "all" else [args.indicator]
        if args.ids:
            ids, sample = np.asarray(args.ids, dtype=np.int64), np.zeros(0, dtype=np.int64)
        else:
            ids, sample = verification_ids(analysis, indicators, args.top, args.sample, args.seed)
        result = verify_tokens(probe, ids, args.mode, progress=bars)
    finally:
        bars.close()
    verdicts = analysis.ensure_verdicts()
    verdicts.record(result.ids, result.verdicts, result.max_prob, result.reasons)
    out = sys.stdout
    out.write(f"\nVerified {len(ids)} tokens ({args.mode} mode, {probe.dtype_name}) in {result.seconds:.1f} s: "
              f"{result.tokens_per_second:.1f} tokens/s\n")
    out.write(f"Verdicts: {summary(result.verdicts)}\n")
    glitch = result.ids[is_glitch(result.verdicts)]
    glitch = glitch[np.argsort(verdicts.max_prob[glitch], kind="stable")]
    shown = glitch[: args.show]
    out.write(f"\nVerified glitch tokens (lowest probability first, {len(glitch)} in all):\n")
    for i, code in zip(shown, classify_tokens(analysis.table, shown)):
        out.write(f"{i:>7}  {_cell(analysis.table.texts[i], TOKEN_WIDTH)} {verdicts.max_prob[i]:>10.3g}  "
                  f"{LABELS[verdicts.verdict[i]]:<14} {TAXONOMY[code]}\n")
    crashes = result.ids[result.verdicts == Verdict.CRASH]
    for i in crashes[: args.show]:  # from the result: ids past the matrix have no row in the analysis
        out.write(f"crash {i}: {result.reasons[int(np.flatnonzero(result.ids == i)[0])]}\n")
    if not args.ids:
        out.write(f"\nIndicator quality against these verdicts (top {args.top} of each indicator verified):\n")
        out.write(format_quality(analysis, verdicts.verdict, sample, args.top) + "\n")
    if args.out:
        rows = write_csv(analysis, args.out, result.ids[result.ids < len(analysis)], indicators[0])
        out.write(f"\nWrote {rows} verified tokens to {args.out}\n")
    if args.filter_list:
        listed = write_filter_list(analysis, args.filter_list)
        out.write(f"Wrote a filter list of {listed} glitch tokens to {args.filter_list}\n")
    if args.session:
        save_analysis(analysis, args.session)
        out.write(f"Saved the analysis to {args.session}\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .core.store.analysis_file import load_analysis
    from .core.store.export import write_csv, write_json
    analysis = load_analysis(args.session)
    indicator = args.indicator or analysis.settings.get("indicator", "cluster_distance")
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
        print(f"{ind.name:<24} suspicious: {ind.suspicious:<5} {ind.description}")
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
    scan_p.add_argument("--indicator", default="cluster_distance", choices=list(INDICATORS),
                        help="indicator to rank by (default cluster_distance, the seed's score)")
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
    ver_p.add_argument("--ids", type=_parse_ids, help="verify exactly these token ids instead")
    ver_p.add_argument("--mode", choices=["full", "fast"], default="full",
                       help="full: three repetition prompts; fast: one short screening prompt")
    ver_p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                       help="network precision (auto: bfloat16 where the CPU has bf16 matrix units)")
    ver_p.add_argument("--clusters", "-k", type=_clusters, default=20)
    ver_p.add_argument("--seed", type=_seed, default=0)
    ver_p.add_argument("--show", type=_amount, default=20, help="how many glitch tokens to list (default 20)")
    ver_p.add_argument("--out", type=Path, help="write the verified tokens to this CSV")
    ver_p.add_argument("--filter-list", type=Path, help="write the verified glitch tokens as a JSON filter list")
    ver_p.add_argument("--session", type=Path, help="save the analysis with its verdicts")
    ver_p.set_defaults(func=cmd_verify)

    exp_p = sub.add_parser("export", help="export tokens of a saved analysis to CSV or JSON")
    exp_p.add_argument("session", type=Path, help="an analysis file written by scan --session")
    exp_p.add_argument("--out", type=Path, required=True, help="output file (.csv or .json)")
    exp_p.add_argument("--indicator", choices=list(INDICATORS), help="indicator to rank by")
    exp_p.add_argument("--end", choices=["low", "high"], help="end of the indicator (default: suspicious)")
    group = exp_p.add_mutually_exclusive_group()
    group.add_argument("--top", type=_count, help="only the top N tokens")
    group.add_argument("--flagged", action="store_true", help="only the flagged tokens")
    exp_p.set_defaults(func=cmd_export)

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
