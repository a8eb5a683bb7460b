"""Benchmark of verification on SmolLM2 (and Gemma-3 with --models smollm2,gemma3): tokens verified per second by
the batched full and fast repetition tests against a per-token `generate` baseline in the same run,
peak memory, agreement of fast with full verdicts, float32 against bfloat16, and the indicator
quality table (top 1000 of each indicator plus 500 random ordinary tokens, fast mode).
With `--engine torch,llamacpp,server,llama-server`: instead, the full test on each engine (`server` is
llama-cpp-python's server, `llama-server` llama.cpp's own, built by `make llama-server`; each started here on the
model's GGUF) beside the torch float32 engine, on the same tokens: speed and agreement. With `--gguf-types
Q8_0,IQ4_NL`: also the model's GGUF requantised to each type by llama.cpp's `llama-quantize` (built beside
llama-server), run by the llama.cpp engine beside torch float32 on the same weights (how much of llama.cpp's
speed on a CPU is the quantisation type's kernels).
Run: `python bench/bench_probing.py [--models smollm2,gemma3] [--quality-top 1000] [--sample 500]`
or `python bench/bench_probing.py --models smollm2,gemma3 --engine torch,llamacpp,server`."""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))  # llama_server: the test suite's server starter


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="smollm2", help="comma-separated, e.g. smollm2,gemma3")
    parser.add_argument("--quality-top", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--agreement", type=int, default=150, help="suspects and ordinary tokens each")
    parser.add_argument("--engine", help="compare these engines with torch float32 (torch,llamacpp,server,llama-server)")
    parser.add_argument("--gguf-types", default="", help="with --engine: also these GGUF types made by "
                        "llama-quantize from the model's GGUF (e.g. Q8_0,IQ4_NL,Q4_0)")
    parser.add_argument("--speed-only", action="store_true", help="stop after the tokens/s table")
    args = parser.parse_args()
    if args.engine:
        for name in args.models.split(","):
            compare_engines(name, args.engine.split(","), args.agreement, [t for t in args.gguf_types.split(",") if t])
        return

    import numpy as np
    import torch
    from machine import machine

    from glitchview.cli import format_quality
    from glitchview.core.pipeline import scan
    from glitchview.core.verify.probing import MODES, ProbeMode, load_probe_model, verify_tokens
    from glitchview.core.verify.quality import verification_ids
    from glitchview.core.verify.templates import default_templates, encode_template, fill, repetition_text
    from glitchview.core.verify.verdicts import Verdict, is_glitch, summary

    print(f"Machine: {machine()}")
    # the previous full test (four prompts, before the quoted copy replaced two of them), timed beside today's
    MODES["full-previous"] = ProbeMode("full-previous", 3, ("repeat-device", "what-means", "repeat-after-me",
                                                            "what-means-answer"), 3, 32)
    for name in args.models.split(","):
        model, analysis = scan(name)
        probe = load_probe_model(model)
        rng = np.random.default_rng(0)
        suspects = analysis.top("unembedding_cosine", args.agreement)
        ordinary = rng.choice(np.setdiff1d(np.flatnonzero(~analysis.table.flags["special"]), suspects),
                              args.agreement, replace=False)
        ids = np.concatenate([suspects, ordinary])
        print(f"\n## {name}: {len(analysis):,} tokens, network in {probe.dtype_name}, {torch.get_num_threads()} threads\n",
              flush=True)

        # baseline: per token, one `generate` call (30 new tokens) on each of the full test's prompts
        specs = {t["name"]: t for t in default_templates()["repetition"]}
        templates = [encode_template(probe.tokenizer, repetition_text(specs[t], 36)) for t in MODES["full"].templates]
        start = time.perf_counter()
        with torch.inference_mode():
            for token in ids[:4]:
                for template in templates:
                    probe.model.generate(torch.from_numpy(fill(template, np.array([token]))), max_new_tokens=30,
                                         do_sample=False, pad_token_id=0)
        base_rate = 4 / (time.perf_counter() - start)
        full = verify_tokens(probe, ids[:96], "full")
        previous = verify_tokens(probe, ids[:96], "full-previous")
        fast = verify_tokens(probe, ids, "fast", confirm=False)  # the screening alone: normal or suspect
        print("| method | tokens/s | vs per-token generate |\n|---|---:|---:|")
        print(f"| per-token `generate`, 30 new tokens on each of the full test's {len(templates)} prompts (baseline) | "
              f"{base_rate:.2f} | 1.0x |")
        print(f"| batched full test, previous ({len(previous.templates)} prompts) | {previous.tokens_per_second:.2f} | "
              f"{previous.tokens_per_second / base_rate:.1f}x |")
        print(f"| batched full test ({len(full.templates)} prompts: {', '.join(full.templates)}) | "
              f"{full.tokens_per_second:.2f} | {full.tokens_per_second / base_rate:.1f}x |")
        print(f"| batched fast screening | {fast.tokens_per_second:.1f} | {fast.tokens_per_second / base_rate:.0f}x |")
        print(f"\npeak memory (process so far): {peak_mb():,.0f} MB")
        same = float((is_glitch(previous.verdicts) == is_glitch(full.verdicts)).mean())
        print(f"previous against today's full test, glitch or not, on the same {len(full.ids)} tokens: {same:.1%} agree")
        if args.speed_only:
            continue

        full_all = verify_tokens(probe, ids, "full")
        glitch_full = is_glitch(full_all.verdicts)
        suspect = fast.verdicts == Verdict.SUSPECT
        agree = float((glitch_full == suspect).mean())
        print(f"\nfast screening (suspect or not) vs full (glitch or not), {len(ids)} tokens ({args.agreement} top "
              f"suspects + {args.agreement} random): agreement {agree:.1%}; full finds {int(glitch_full.sum())} "
              f"glitch tokens, the screening {int(suspect.sum())} suspects ({int((glitch_full & ~suspect).sum())} "
              f"glitch tokens screened normal); see bench_screening.py for the confirmed pipeline")
        if probe.dtype_name == "bfloat16":
            fp32 = load_probe_model(model, "float32")
            ref = verify_tokens(fp32, ids[:96], "full")
            same = float((is_glitch(ref.verdicts) == glitch_full[:96]).mean())
            print(f"bfloat16 vs float32 full verdicts on 96 tokens: agreement {same:.1%} "
                  f"(float32: {ref.tokens_per_second:.2f} tokens/s)")
            del fp32

        if name == "smollm2":
            vids, sample = verification_ids(analysis, list(analysis.scores), args.quality_top, args.sample)
            result = verify_tokens(probe, vids, "fast")  # screening, then the full test on its suspects
            verdicts = analysis.ensure_verdicts()
            verdicts.record(result.ids, result.verdicts, result.max_prob, result.reasons)
            print(f"\nindicator quality, {len(vids)} tokens verified ({result.mode}, {result.seconds:.0f} s): "
                  + summary(result.verdicts))
            print("```\n" + format_quality(analysis, verdicts.verdict, sample, args.quality_top) + "\n```")
        sys.stdout.flush()


def compare_engines(name: str, engines: list[str], n: int, gguf_types: list[str]) -> None:
    """The full test of `n` top suspects and `n` random ordinary tokens on each engine and on torch float32,
    then on each of `gguf_types` (see `compare_gguf_types`)."""
    import contextlib

    import numpy as np
    from llama_server import LLAMA_SERVER, llama_server
    from machine import machine

    from glitchview.core.pipeline import scan
    from glitchview.core.verify.engines import EngineChoice, load_engine
    from glitchview.core.verify.probing import load_probe_model, verify_tokens
    from glitchview.core.verify.verdicts import is_glitch

    model, analysis = scan(name)
    suspects = analysis.top("unembedding_cosine", n)
    rest = np.setdiff1d(np.flatnonzero(~analysis.table.flags["special"]), suspects)
    ids = np.concatenate([suspects, np.random.default_rng(0).choice(rest, n, replace=False)])
    print(f"\n## {name}: full test of {len(ids)} tokens ({n} top suspects + {n} random) on {machine()}; load: the "
          f"1-minute load average when each row ended\n", flush=True)
    ref = verify_tokens(load_probe_model(model, "float32"), ids, "full")
    print("| engine | tokens/s | vs torch float32 | glitch-or-not agreement | same verdict | glitch tokens | load |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {ref.engine} (baseline) | {ref.tokens_per_second:.2f} | 1.0x | 100% | 100% | "
          f"{int(is_glitch(ref.verdicts).sum())} | {os.getloadavg()[0]:.1f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        for engine in engines:
            if engine in ("server", "llama-server"):  # llama-cpp-python's server, or llama.cpp's (make llama-server)
                binary = LLAMA_SERVER if engine == "llama-server" else None
                url = stack.enter_context(llama_server(model.source.path, Path(tmp) / f"{engine}.log", binary=binary))
                choice = EngineChoice("server", server=url)
            else:
                choice = EngineChoice(engine, "auto")
            result = verify_tokens(load_engine(model, choice), ids, "full")
            same = float((is_glitch(result.verdicts) == is_glitch(ref.verdicts)).mean())
            exact = float((result.verdicts == ref.verdicts).mean())
            print(f"| {result.engine} | {result.tokens_per_second:.2f} | "
                  f"{result.tokens_per_second / ref.tokens_per_second:.1f}x | {same:.1%} | {exact:.1%} | "
                  f"{int(is_glitch(result.verdicts).sum())} | {os.getloadavg()[0]:.1f} |", flush=True)
    if gguf_types:
        compare_gguf_types(model, ids, ref, gguf_types)


def compare_gguf_types(model: Any, ids: Any, ref: Any, kinds: list[str]) -> None:
    """The model's GGUF requantised to each of `kinds` by llama-quantize; the llama.cpp engine against torch
    float32 on the same (requantised) weights, and the verdicts against `ref` (torch float32, the original file)."""
    import subprocess

    from llama_server import LLAMA_QUANTIZE

    from glitchview.core.pipeline import open_model
    from glitchview.core.verify.engines import EngineChoice, load_engine
    from glitchview.core.verify.probing import load_probe_model, verify_tokens
    from glitchview.core.verify.verdicts import is_glitch

    print(f"\n{model.source.path.name} requantised by llama-quantize (--allow-requantize) to each type; torch float32 "
          f"runs the same requantised weights (dequantised)\n")
    print("| GGUF type | llama.cpp tokens/s | torch float32, same weights | vs torch float32 | glitch-or-not agreement "
          "| same verdict | glitch tokens | glitch-or-not agreement with the original file (torch float32) | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            path = Path(tmp) / f"{model.source.path.stem}.{kind}.gguf"
            subprocess.run([str(LLAMA_QUANTIZE), "--allow-requantize", str(model.source.path), str(path), kind],
                           check=True, capture_output=True)
            requantised = open_model(str(path))
            torch_run = verify_tokens(load_probe_model(requantised, "float32"), ids, "full")
            engine = load_engine(requantised, EngineChoice("llamacpp", "auto"))
            run = verify_tokens(engine, ids, "full")
            glitch, own = is_glitch(run.verdicts), is_glitch(torch_run.verdicts)
            print(f"| {engine.dtype_name} | {run.tokens_per_second:.2f} | {torch_run.tokens_per_second:.2f} | "
                  f"{run.tokens_per_second / torch_run.tokens_per_second:.1f}x | {float((glitch == own).mean()):.1%} | "
                  f"{float((run.verdicts == torch_run.verdicts).mean()):.1%} | {int(glitch.sum())} | "
                  f"{float((glitch == is_glitch(ref.verdicts)).mean()):.1%} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
