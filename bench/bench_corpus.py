"""Benchmark of corpus counting: MB of text per second of `count_corpus` (a pool of child processes,
one per core, `encode_batch`) against a single-process `tokenizer.encode` loop over the same documents,
in the same run, on the same machine (named in the output), and a check that both count the same.
The pool's time includes starting its processes and loading the tokenizer in each (measured alone on a
one-line file and printed beside it); the baseline's tokenizer is loaded before its clock starts.
The corpus is real text already on disk (the Python files and licence texts of the installed packages),
concatenated into one .txt file of --mb megabytes.
Run: `python bench/bench_corpus.py [--model smollm2] [--mb 32] [--workers N]`."""

from __future__ import annotations

import argparse
import collections
import glob
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def build_corpus(path: Path, megabytes: float) -> int:
    """Real text from disk, concatenated up to `megabytes`."""
    site = Path(sys.prefix) / "lib"
    sources = sorted(glob.glob(str(site / "python3*" / "site-packages" / "**" / "*.py"), recursive=True))
    sources += sorted(glob.glob(str(site / "python3*" / "site-packages" / "*" / "LICENSE*")))
    limit, written = int(megabytes * 1e6), 0
    with path.open("w", encoding="utf-8") as out:
        for name in sources:
            try:
                text = Path(name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            out.write(text if text.endswith("\n") else text + "\n")
            written += len(text.encode("utf-8"))
            if written >= limit:
                break
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--mb", type=float, default=32.0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    import numpy as np
    from tokenizers import Tokenizer

    from glitchview.core.pipeline import open_model
    from glitchview.core.scores.corpus import count_model_corpus, tokenizer_file
    from glitchview.core.scores.corpus_sources import plan_units, unit_documents

    print(f"machine: {machine()}")
    model = open_model(args.model)
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.txt"
        size = build_corpus(corpus, args.mb)
        print(f"model: {model.source.display_name}; corpus: {size / 1e6:.1f} MB of text from the installed packages")

        tiny = Path(folder) / "one-line.txt"
        tiny.write_text("Hello world.\n", encoding="utf-8")
        startup = count_model_corpus(model, [tiny], workers=2).seconds  # starting the processes, loading the tokenizer
        counts = count_model_corpus(model, [corpus], workers=args.workers)
        pool_rate = counts.n_bytes / 1e6 / counts.seconds
        print(f"pool ({counts.workers} processes, {counts.method}): {counts.seconds:.2f} s, {pool_rate:.2f} MB/s, "
              f"{counts.total:,} tokens (of which starting 2 processes with the tokenizer: {startup:.2f} s; "
              f"{counts.n_bytes / 1e6 / max(counts.seconds - startup, 1e-9):.2f} MB/s after it)")

        tokenizer = Tokenizer.from_file(str(tokenizer_file(model)))
        units, _, _ = plan_units([corpus])
        start = time.perf_counter()
        documents = [doc for unit in units for doc in unit_documents(unit)]
        counter: collections.Counter = collections.Counter()
        for doc in documents:
            counter.update(tokenizer.encode(doc, add_special_tokens=False).ids)
        seconds = time.perf_counter() - start
        base_rate = counts.n_bytes / 1e6 / seconds
        print(f"baseline (1 process, tokenizer.encode loop): {seconds:.2f} s, {base_rate:.2f} MB/s")
        print(f"speed-up: {pool_rate / base_rate:.2f}x")
        expected = np.zeros(len(counts.counts), dtype=np.int64)
        for token, c in counter.items():
            expected[token] = c
        print(f"same counts: {bool(np.array_equal(expected, counts.counts))}")


if __name__ == "__main__":
    main()
