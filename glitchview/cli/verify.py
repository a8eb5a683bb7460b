"""Commands that ask the model itself: verify (the repetition test, through the session's
operation) and hunt (the learning detector)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..core.analysis import DEFAULT_INDICATOR, Analysis
from ..core.errors import GlitchViewError
from ..core.progress import sub_progress
from ..core.scores.indicators import INDICATORS
from ..core.verify.engines import EngineChoice
from .output import TOKEN_WIDTH, StepBars, _cell, format_quality


def _saved_or_new_analysis(model, args: argparse.Namespace, progress) -> tuple[Analysis, str]:
    """The analysis to verify against: the one saved in `--session FILE` when it exists (refused if
    it was made for another version of the model), else a new one. Returns it and where it came from."""
    from ..core.pipeline import ScanSettings, analyse
    from ..core.store import analysis_cache
    from ..core.store.analysis_file import load_analysis

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


def engine_choice(args: argparse.Namespace) -> EngineChoice:
    """The engine the arguments name (`--server` alone means the server engine)."""
    engine = args.engine or ("server" if args.server else "torch")
    if args.server and engine != "server":
        raise GlitchViewError(f"--server needs --engine server (not {engine})")
    if args.api_key_env and args.api_key_keyring:
        raise GlitchViewError("give the API key one way: --api-key-env or --api-key-keyring")
    return EngineChoice(engine, args.device, args.precision, args.server or "", args.api_key_env,
                        api_key_keyring=args.api_key_keyring, concurrency=args.concurrency,
                        rate_limit=args.rate_limit)


def cmd_verify(args: argparse.Namespace) -> int:
    from ..core import operations
    from ..core.model.vocab import cached_token_table
    from ..core.pipeline import open_model
    from ..core.session import Session
    from ..core.store.analysis_file import save_analysis
    from ..core.store.export import write_csv, write_filter_list
    from ..core.verify.engines import load_engine
    from ..core.verify.probing import verify_tokens
    from ..core.verify.quality import verification_ids
    from ..core.verify.taxonomy import TAXONOMY, classify_tokens
    from ..core.verify.verdicts import LABELS, Verdict, is_glitch, summary

    # --ids alone needs only the model; --top, --out, --filter-list and --session need an analysis,
    # taken from the --session file when it holds one of this model
    needs_analysis = not args.ids or bool(args.out or args.filter_list or args.session)
    choice = engine_choice(args)
    bars = StepBars()
    try:
        model = open_model(args.model, sub_progress(bars, 0.0, 0.3))
        bars(0.3, f"Load network: preparing {model.source.display_name} on the {choice.label} engine")
        probe = load_engine(model, choice)  # an encoder fails here, before any work
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
            session.set_engine(choice)
            session.adopt_model(model, probe, choice)
            verified = operations.verify(session.snapshot("verify"), ids, args.mode, bars, confirm=not args.no_confirm)
            session.apply(verified)
            result = verified.verification
    finally:
        bars.close()
    out = sys.stdout
    out.write(f"\nModel {model.source.display_name}: {origin}\n")
    out.write(f"Verified {len(ids)} tokens ({result.mode}; {probe.description}) in {result.seconds:.1f} s: "
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
    from ..core.model.token_structure import add_token_structure
    from ..core.pipeline import open_model
    from ..core.scores.detector import learn
    from ..core.store.analysis_file import save_analysis
    from ..core.verify.engines import load_engine
    from ..core.verify.probing import verify_tokens
    from ..core.verify.verdicts import is_glitch, is_verified, summary

    choice = engine_choice(args)
    bars = StepBars()
    learnt: list[np.ndarray] = []
    try:
        model = open_model(args.model, sub_progress(bars, 0.0, 0.2))
        probe = load_engine(model, choice)
        analysis, origin = _saved_or_new_analysis(model, args, sub_progress(bars, 0.2, 0.4))
        add_token_structure(analysis.table, model.tokenizer)  # the detector learns from it (kept in the analysis)
        verdicts = analysis.ensure_verdicts()

        def verify(ids: np.ndarray) -> None:  # screening confirmed by the full test, recorded in the analysis
            result = verify_tokens(probe, ids, "fast", sub_progress(bars, 0.4, 0.8))
            verdicts.record(result.ids, result.verdicts, result.max_prob, result.reasons)
            learnt.append(result.verdicts)

        start = time.perf_counter()
        detector = learn(analysis, verify, args.budget, np.zeros(len(analysis), dtype=bool), args.seed, args.check)
        learn_s = time.perf_counter() - start
        order = np.argsort(-detector.scores, kind="stable")
        fresh = order[~is_verified(verdicts.verdict)[order] & ~analysis.known_unused[order]][: args.check]
        check = verify_tokens(probe, fresh, "full", sub_progress(bars, 0.8, 1.0))
        verdicts.record(check.ids, check.verdicts, check.max_prob, check.reasons)
    finally:
        bars.close()
    out = sys.stdout
    out.write(f"\nModel {model.source.display_name}: {origin}\n")
    chosen = np.concatenate(learnt)
    out.write(f"Verified {len(chosen)} chosen tokens in two rounds (the tops of the indicators and of the most "
              f"fragment-like tokens and random, then the detector's top, where it was least sure and random; "
              f"screening confirmed by the full test; {probe.description}; {learn_s:.0f} s): "
              f"{summary(chosen)}\n")
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


