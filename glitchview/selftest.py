"""`glitchview --self-test`: checks the installation (Python packages, Qt platform, torch, resources,
demo model, cache folder) and prints what is missing with the fix; then a smoke run: a tiny model
is written to a temporary folder and analysed through the real window, offscreen. Exit status 0
when everything required works. The frozen build runs the same check."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

CORPUS = ["The weather is nice today.", "I like to eat bread for breakfast.", "My favorite color is blue.",
          "def main(): return 0", "Numbers like 12345 appear in dates."] * 10


def _package(name: str) -> tuple[bool, str]:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # report any import failure as missing
        return False, f"{name} cannot be imported ({exc}); fix: pip install {name}"
    return True, f"{name} {getattr(module, '__version__', '')}".strip()


def _qt() -> tuple[bool, str]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")
    try:
        import PySide6
        from PySide6.QtWidgets import QApplication
    except Exception as exc:
        return False, f"Qt (PySide6) cannot be imported ({exc}); fix: pip install 'PySide6-Essentials<6.12'"
    if PySide6.__version__.startswith("6.12.0"):
        return False, "PySide6 6.12.0 corrupts reference counts on Python 3.11; fix: pip install 'PySide6-Essentials<6.12'"
    from .platform_check import check_platform

    problem = check_platform(os.environ["QT_QPA_PLATFORM"])
    if problem:
        return False, problem
    app = QApplication.instance() or QApplication([sys.argv[0]])
    return True, f"Qt {PySide6.__version__}, platform '{app.platformName()}'"


def _torch() -> tuple[bool, str]:
    ok, message = _package("torch")
    if ok:
        from .core.verify.probing import bf16_is_fast

        message += f" (bfloat16 matrix units: {'yes' if bf16_is_fast() else 'no, float32 is used'})"
    return ok, message


def _resources() -> tuple[bool, str]:
    from .core.verify.templates import default_templates

    try:
        count = sum(len(v) for v in default_templates().values() if isinstance(v, list))
    except Exception as exc:
        return False, f"resources unreadable ({exc}); fix: reinstall GlitchView"
    return True, f"resources: {count} prompt templates"


def _demo() -> tuple[bool, str]:
    from .core.model.sources import DEFAULT_MODEL, DEMO_MODELS, demo_installed

    demo = DEMO_MODELS[DEFAULT_MODEL]
    if demo_installed(DEFAULT_MODEL):
        return True, f"default demo model {DEFAULT_MODEL} installed"
    return False, f"default demo model {DEFAULT_MODEL} is not installed; fix: {demo.install}"


def _cache() -> tuple[bool, str]:
    from .core.model.sources import cache_root

    try:
        cache_root().mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_root()):
            pass
    except OSError as exc:
        return False, f"cache folder {cache_root()} is not writable ({exc}); fix: set GLITCHVIEW_CACHE_DIR"
    return True, f"cache folder {cache_root()}"


def write_tiny_model(folder: Path, rows: int = 300, dim: int = 16) -> int:
    """A tiny model folder (tokenizer + config + embedding matrix) for the smoke run."""
    import json

    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=rows, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    n = tok.get_vocab_size()
    weights = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    save_file({"model.embed_tokens.weight": weights}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    return n


def smoke_run(timeout_s: float = 300.0) -> tuple[bool, str]:
    """Analyse a tiny model through the real window (offscreen) and check the map."""
    from .gui.app import create_application
    from .gui.main_window import MainWindow

    app = create_application()
    with tempfile.TemporaryDirectory(prefix="glitchview-selftest-") as tmp:
        os.environ.setdefault("GLITCHVIEW_CACHE_DIR", str(Path(tmp) / "cache"))
        n = write_tiny_model(Path(tmp) / "tiny")
        window = MainWindow()
        window.open_model(str(Path(tmp) / "tiny"))
        start = time.monotonic()
        while (window.session is None or window.jobs.busy) and time.monotonic() - start < timeout_s:
            app.processEvents()
            time.sleep(0.01)
        drawn = window.map.points.count
        error = window.last_error
        window.close()
    if error or drawn != n:
        return False, f"smoke run failed: {error or f'{drawn} of {n} points drawn'}"
    return True, f"smoke run: a {n}-token model analysed and drawn in {time.monotonic() - start:.1f} s"


def run(smoke: bool = True) -> int:
    checks: list[tuple[str, Callable[[], tuple[bool, str]], bool]] = [
        ("numpy", lambda: _package("numpy"), True), ("torch", _torch, True),
        ("transformers", lambda: _package("transformers"), True), ("tokenizers", lambda: _package("tokenizers"), True),
        ("safetensors", lambda: _package("safetensors"), True), ("gguf", lambda: _package("gguf"), True),
        ("scipy", lambda: _package("scipy"), True), ("Qt", _qt, True), ("pyqtgraph", lambda: _package("pyqtgraph"), True),
        ("resources", _resources, True), ("cache", _cache, True), ("demo model", _demo, False),
    ]
    if smoke:
        checks.append(("smoke", smoke_run, True))
    failed = 0
    for name, check, required in checks:
        if name == "smoke" and failed:  # Qt or a package is missing: a window would abort the process
            print("skipped the smoke run: fix the missing checks first", flush=True)
            break
        ok, message = check()
        label = "ok     " if ok else ("MISSING" if required else "note   ")
        print(f"{label} {message}", flush=True)
        failed += (not ok) and required
    print("self-test passed" if not failed else f"self-test failed: {failed} required check(s) missing")
    return 1 if failed else 0
