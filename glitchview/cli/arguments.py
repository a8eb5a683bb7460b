"""The command line's arguments: one parser, argument types that turn a bad count, id or seed
into one clear line, and the check that a command's output files differ from its input."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from .. import __version__
from ..core.analysis import DEFAULT_INDICATOR
from ..core.errors import GlitchViewError
from ..core.model.sources import DEFAULT_MODEL, DEMO_MODELS
from ..core.scores.indicators import INDICATORS
from ..core.verify.engines import DEFAULT_ENGINE, ENGINES
from ..core.verify.engines.devices import DEFAULT_DEVICE, DEVICES
from .analyse import cmd_export, cmd_gui, cmd_indicators, cmd_models, cmd_scan
from .research import cmd_compare, cmd_corpus, cmd_report
from .verify import cmd_hunt, cmd_verify

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
    from ..core.store.analysis_checks import MAX_CLUSTERS

    return _integer(text, f"a number of clusters from 1 to {MAX_CLUSTERS}", 1, MAX_CLUSTERS)


def _amount(text: str) -> int:
    """A count where zero means none (--sample, --show)."""
    return _integer(text, "a whole number, 0 or more", 0, MAX_ID)


def _rate(text: str) -> float:
    """Requests per second (--rate-limit): a finite number, 0 or more (0: no limit)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected requests per second (0 or more), got '{text}'") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected requests per second (0 or more), got {value}")
    return value


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
    from ..core.store.files import refuse_overwriting

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


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the model runs: torch (on --device), llama.cpp on the GGUF file, or an inference server."""
    parser.add_argument("--engine", choices=list(ENGINES),
                        help="torch (default), llamacpp (the GGUF file as deployed; glitchview[llamacpp]) or "
                             "server (an OpenAI-compatible server: see --server)")
    parser.add_argument("--device", choices=list(DEVICES), default=DEFAULT_DEVICE,
                        help="torch: where the network runs (auto: a GPU when there is one and it fits, else the CPU)")
    parser.add_argument("--server", metavar="URL",
                        help="verify on an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM, llama-server, "
                             "llama-cpp-python) that serves this model")
    parser.add_argument("--api-key-env", metavar="NAME", default="",
                        help="the environment variable holding the server's API key (never pass the key itself)")
    parser.add_argument("--api-key-keyring", action="store_true",
                        help="take the server's API key from the system keyring (service 'glitchview', user = the "
                             "server URL; store it with `keyring set glitchview URL`)")
    parser.add_argument("--concurrency", type=_count, default=DEFAULT_ENGINE.concurrency,
                        help=f"server: requests in flight at once (default {DEFAULT_ENGINE.concurrency})")
    parser.add_argument("--rate-limit", type=_rate, default=DEFAULT_ENGINE.rate_limit, metavar="PER_SECOND",
                        help="server: at most this many requests started per second (default 0: no limit)")


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
    _engine_arguments(ver_p)
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
    _engine_arguments(hunt_p)
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


