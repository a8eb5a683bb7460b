"""The llama.cpp engine: the GGUF file itself, quantised as users deploy it, evaluated by llama.cpp
through llama-cpp-python's C API (the optional extra `glitchview[llamacpp]`).

The prompts of a batch are decoded together, one sequence each, in one llama.cpp batch; the part of
the prompt before the first slot is decoded once into sequence 0 and its key/value cells are shared by
every row's sequence (kept for the next batch of the same template). Logits are read only where a
probability is needed: the last prompt position of each row and each greedy step; a row whose greedy
answer has ended (an end-of-text token) is not decoded further (those positions do not count)."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import GlitchViewError
from ...progress import CancelToken, ProgressFn, no_progress
from .answers import greedy_scores
from .sampling import GenerationSettings, choose, entropy

if TYPE_CHECKING:
    from ...model.loading import LoadedModel

BATCH_ROWS = 32  # prompts decoded together (sequences 1..BATCH_ROWS; 0 holds the shared prefix)
CONTEXT = 8192  # key/value cells shared by all sequences: prefix + rows x (prompt tail + steps)
CHUNK = 2048  # tokens per llama_decode call
INSTALL = 'CMAKE_ARGS="-DGGML_NATIVE=ON" pip install --no-cache-dir "glitchview[llamacpp]"'  # built for this CPU
SIMD_LEVELS = ("AVX512", "AVX2", "AVX", "SVE", "NEON")  # widest first, as llama_print_system_info names them


class LlamaCppMissing(GlitchViewError):
    """llama-cpp-python is not installed."""


def _llama() -> Any:
    # llama.cpp's OpenMP threads spin while they wait; on a CPU shared with other work that made every
    # decode 40-60x slower here (SmolLM2: 0.6 s instead of 0.01 s a token): they wait passively unless
    # the user chose otherwise (read when the library loads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from llama_cpp import llama_cpp
    except ImportError as exc:
        raise LlamaCppMissing(f"the llamacpp engine needs llama-cpp-python: {INSTALL} ({exc})") from None
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # its log callback prints below ERROR otherwise
    return llama_cpp


class LlamaCppEngine:
    """A GGUF model in a llama.cpp context with room for BATCH_ROWS sequences plus one for generation."""

    name = "llamacpp"

    def __init__(self, path: Path, tokenizer: Any, vocab_rows: int) -> None:
        lib = self._lib = _llama()
        lib.llama_backend_init()
        params = lib.llama_model_default_params()
        params.n_gpu_layers = -1  # every layer on the GPU when this build has one
        self._model = lib.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not self._model:
            raise GlitchViewError(f"llama.cpp cannot load {path.name} (an architecture or format it does not know)")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = lib.llama_vocab_n_tokens(self._vocab)
        ctx = lib.llama_context_default_params()
        ctx.n_ctx, ctx.n_batch, ctx.n_ubatch = CONTEXT, CHUNK, 512
        ctx.n_seq_max = BATCH_ROWS + 2
        ctx.kv_unified = True  # rows share the prefix cells
        ctx.n_threads = ctx.n_threads_batch = os.cpu_count() or 1
        self._ctx = lib.llama_init_from_model(self._model, ctx)
        if not self._ctx:
            lib.llama_model_free(self._model)
            raise GlitchViewError(f"llama.cpp cannot make a context for {path.name} (out of memory?)")
        self._memory = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(CHUNK, 0, 1)
        self._prefix: tuple[int, ...] = ()
        self._lock = threading.Lock()
        self.tokenizer = tokenizer
        self.vocab_rows = vocab_rows
        desc = ctypes.create_string_buffer(256)
        lib.llama_model_desc(self._model, desc, 256)  # "llama 135M Q4_1", "gemma3 270M Q4_K - Medium"
        self.dtype_name = " ".join(desc.value.decode("utf-8", "replace").split()[2:]) or "gguf"
        self.where = "GPU" if lib.llama_supports_gpu_offload() else "CPU"
        self.simd = simd_level(lib.llama_print_system_info().decode("utf-8", "replace"))

    @property
    def description(self) -> str:
        build = "" if self.where == "GPU" else f" ({build_note(self.simd, host_simd())})"
        return f"llama.cpp, {self.dtype_name} on {self.where}{build}"

    def close(self) -> None:
        if self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._lib.llama_model_free(self._model)
            self._ctx = None

    def __del__(self) -> None:
        if not sys.is_finalizing():  # at exit the library's functions may be gone; the process frees all
            self.close()

    # --- decoding -------------------------------------------------------------------------------------
    def _decode(self, tokens: list[int], positions: list[int], seqs: list[int], wanted: list[bool]) -> np.ndarray:
        """Decode the entries (in chunks of CHUNK); the logits of the wanted ones, in order."""
        out = []
        batch = self._batch
        for start in range(0, len(tokens), CHUNK):
            end = min(start + CHUNK, len(tokens))
            batch.n_tokens = end - start
            for i in range(start, end):
                j = i - start
                batch.token[j], batch.pos[j], batch.n_seq_id[j] = tokens[i], positions[i], 1
                batch.seq_id[j][0], batch.logits[j] = seqs[i], wanted[i]
            code = self._lib.llama_decode(self._ctx, batch)
            if code != 0:
                raise GlitchViewError(f"llama.cpp could not decode the batch (llama_decode returned {code})")
            for i in range(start, end):
                if wanted[i]:
                    row = self._lib.llama_get_logits_ith(self._ctx, i - start)
                    out.append(np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy())
        return np.stack(out) if out else np.zeros((0, self.n_vocab), dtype=np.float32)

    def _share_prefix(self, prefix: tuple[int, ...]) -> None:
        """Sequence 0 holds `prefix` (decoded once per template)."""
        if prefix == self._prefix:
            return
        self._lib.llama_memory_seq_rm(self._memory, 0, -1, -1)
        self._prefix = ()
        if prefix:
            n = len(prefix)
            self._decode(list(prefix), list(range(n)), [0] * n, [False] * (n - 1) + [True])
        self._prefix = prefix

    def probe(self, rows: np.ndarray, targets: np.ndarray, steps: int, answers: list[str] | None = None,
              cancel: CancelToken | None = None) -> np.ndarray:
        """See `Engine.probe`: the rows in sequences 1..n, their shared prefix in sequence 0."""
        out = np.zeros(len(rows), dtype=np.float32)
        for start in range(0, len(rows), BATCH_ROWS):
            part = slice(start, start + BATCH_ROWS)
            out[part] = self._probe_rows(rows[part], targets[part], steps,
                                         answers[part] if answers is not None else None)
        return out

    def _probe_rows(self, rows: np.ndarray, targets: np.ndarray, steps: int, answers: list[str] | None) -> np.ndarray:
        first_slot = int(np.argmax(rows[0] != rows[-1])) if len(rows) > 1 else 0
        first_slot = min(first_slot, rows.shape[1] - 1)
        n, width = len(rows), rows.shape[1]
        seqs = range(1, n + 1)
        with self._lock:
            self._share_prefix(tuple(rows[0, :first_slot].tolist()))
            try:
                tokens, positions, owners, wanted = [], [], [], []
                for k, seq in enumerate(seqs):
                    if first_slot:
                        self._lib.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
                    tail = rows[k, first_slot:].tolist()
                    tokens += tail
                    positions += range(first_slot, width)
                    owners += [seq] * len(tail)
                    wanted += [False] * (len(tail) - 1) + [True]
                logits = self._decode(tokens, positions, owners, wanted)
                target_p = np.zeros((n, steps), dtype=np.float32)
                greedy = np.zeros((n, steps), dtype=np.int64)
                greedy_p = np.zeros((n, steps), dtype=np.float32)
                ends = self.eos_ids()
                alive = np.arange(n)  # the rows whose answer goes on (one row of `logits` each)
                for step in range(steps):
                    probs = _softmax(logits)
                    here = np.arange(len(alive))
                    choice = probs.argmax(axis=1)
                    target_p[alive, step] = probs[here, targets[alive]]
                    greedy[alive, step], greedy_p[alive, step] = choice, probs[here, choice]
                    going = ~np.isin(choice, list(ends))  # positions after an end token do not count: not decoded
                    alive, choice = alive[going], choice[going]
                    if step == steps - 1 or not len(alive):
                        break
                    logits = self._decode(choice.tolist(), [width + step] * len(alive), (alive + 1).tolist(),
                                          [True] * len(alive))
            finally:
                for seq in seqs:
                    self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
        return greedy_scores(self.tokenizer, target_p, greedy, greedy_p, ends, answers)

    def stream(self, prompt_ids: np.ndarray, settings: GenerationSettings,
               cancel: CancelToken) -> Iterator[tuple[int, float, float]]:
        """See `Engine.stream`: one sequence of its own (BATCH_ROWS + 1), next to the probing ones."""
        import torch

        seq = BATCH_ROWS + 1
        gen = torch.Generator().manual_seed(settings.seed)
        prompt = [int(t) for t in prompt_ids]
        position = len(prompt)
        try:
            with self._lock:
                self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
                logits = self._decode(prompt, list(range(position)), [seq] * position,
                                      [False] * (position - 1) + [True])[0]
            while not cancel.cancelled:
                probs = torch.softmax(torch.from_numpy(logits), dim=-1)
                token = choose(probs, settings, gen)
                yield token, float(probs[token]), entropy(probs)
                with self._lock:
                    logits = self._decode([token], [position], [seq], [True])[0]
                position += 1
        finally:
            with self._lock:
                self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)

    def eos_ids(self) -> set[int]:
        ids = {self._lib.llama_vocab_eos(self._vocab), self._lib.llama_vocab_eot(self._vocab)}
        return {int(i) for i in ids if i >= 0}


def simd_level(system_info: str) -> str:
    """The widest vector instruction set llama.cpp was built with, from its system info
    ("CPU : SSE3 = 1 | AVX2 = 1 | … |"); "" when it names none of SIMD_LEVELS."""
    enabled = {name.split(":")[-1].strip() for name, _, value in (part.partition("=") for part in system_info.split("|"))
               if value.strip() == "1"}
    return next((level for level in SIMD_LEVELS if level in enabled), "")


def host_simd() -> str:
    """The widest of SIMD_LEVELS this CPU runs, as torch detects it ("" when torch names none of them)."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability().upper()  # "AVX512", "AVX2", "SVE256", "DEFAULT"
    return next((level for level in SIMD_LEVELS if capability.startswith(level)), "")


def build_note(built: str, host: str) -> str:
    """What the user sees of llama.cpp's build: its instruction set, and the advice to rebuild when this CPU
    has a wider one (an AVX2 build ran IQ4_NL at 15 tokens/s where an AVX-512 build ran 22-26, see README)."""
    note = f"{built or 'generic'} build"
    if host and host in SIMD_LEVELS and (not built or SIMD_LEVELS.index(host) < SIMD_LEVELS.index(built)):
        note += f"; this CPU has {host}: reinstall with CMAKE_ARGS=-DGGML_NATIVE=ON for its kernels"
    return note


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


_ENGINES: dict[str, LlamaCppEngine] = {}
_LOCK = threading.Lock()


def load_llamacpp(loaded: LoadedModel, progress: ProgressFn = no_progress,
                  cancel: CancelToken | None = None) -> LlamaCppEngine:
    """The llama.cpp engine for a model opened from a GGUF file (one kept per process, like torch's network)."""
    if not loaded.source.is_gguf:
        raise GlitchViewError(f"the llamacpp engine reads GGUF files; {loaded.source.display_name} is a "
                              f"{loaded.source.kind} (convert it with llama.cpp's convert_hf_to_gguf.py, or use torch)")
    with _LOCK:
        if loaded.fingerprint not in _ENGINES:
            progress(0.1, f"Loading {loaded.source.path.name} into llama.cpp")
            for old in _ENGINES.values():
                old.close()
            _ENGINES.clear()
            _ENGINES[loaded.fingerprint] = LlamaCppEngine(loaded.source.path, loaded.tokenizer,
                                                          loaded.input_embeddings.shape[0])
        return _ENGINES[loaded.fingerprint]
