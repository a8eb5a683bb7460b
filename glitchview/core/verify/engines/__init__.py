"""Where the model runs for verification and the prompt editor: one interface, three engines.

- `torch`: the network built by transformers, on the CPU or a local GPU (`torch_engine`);
- `llamacpp`: the GGUF file itself, quantised as users deploy it, through llama-cpp-python
  (`llamacpp_engine`, the optional extra `glitchview[llamacpp]`);
- `server`: any OpenAI-compatible inference server (vLLM, llama.cpp's llama-server, llama-cpp-python's
  server), so that a model too large for this machine is verified where it is served (`server_engine`).

The repetition test (`probing.verify_tokens`), the learning detector (through it) and the prompt
editor (`generation.generate`) see only `Engine`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ...errors import GlitchViewError
from ...progress import CancelToken, ProgressFn, no_progress
from .devices import DEFAULT_DEVICE
from .sampling import GenerationSettings

if TYPE_CHECKING:
    from ...model.loading import LoadedModel

ENGINES = ("torch", "llamacpp", "server")


class Engine(Protocol):
    name: str  # torch, llamacpp or server
    tokenizer: object  # the analysed model's tokenizer (a `tokenizers.Tokenizer`)
    vocab_rows: int
    dtype_name: str  # the number format the weights run in, as the engine knows it

    @property
    def description(self) -> str:
        """One line for status bars and reports: engine, format, where it runs."""

    def probe(self, rows: np.ndarray, targets: np.ndarray, steps: int, answers: list[str] | None = None,
              cancel: CancelToken | None = None) -> np.ndarray:
        """For each prompt row, the largest probability of its target over the next `steps` positions
        (the first, then greedy continuations); with `answers`, also that of a greedy answer writing it.
        Local engines read `cancel` between batches (the caller does); a server stops its requests."""

    def stream(self, prompt_ids: np.ndarray, settings: GenerationSettings,
               cancel: CancelToken) -> Iterator[tuple[int, float, float]]:
        """(token, probability, entropy) of each new token after `prompt_ids`, until the caller stops."""

    def eos_ids(self) -> set[int]:
        """Token ids that end a generation."""


@dataclass(frozen=True)
class EngineChoice:
    """What the user chose: the engine and its settings (never an API key: only the variable's name)."""

    engine: str = "torch"
    device: str = DEFAULT_DEVICE  # torch: auto, cpu, cuda, mps
    precision: str = "auto"  # torch: auto, float32, bfloat16
    server: str = ""  # server: the base URL, e.g. http://127.0.0.1:8000/v1
    api_key_env: str = ""  # server: the environment variable holding the API key
    api_key_keyring: bool = False  # server: the key from the system keyring (service glitchview, user = URL)
    concurrency: int = 8  # server: requests in flight at once
    rate_limit: float = 0.0  # server: requests started per second at most (0: no limit)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise GlitchViewError(f"unknown engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.engine == "server" and not self.server:
            raise GlitchViewError("the server engine needs the server's URL (--server http://HOST:PORT/v1)")

    @property
    def label(self) -> str:
        if self.engine == "server":
            return f"server {self.server}"
        return f"torch ({self.device})" if self.engine == "torch" else self.engine


DEFAULT_ENGINE = EngineChoice()


def load_engine(loaded: LoadedModel, choice: EngineChoice = DEFAULT_ENGINE, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> Engine:
    """The engine `choice` names, ready for `loaded` (an encoder is refused by every engine)."""
    from .torch_engine import NotGenerativeError, load_probe_model

    if not loaded.generative:
        raise NotGenerativeError(
            f"{loaded.source.display_name} is an encoder ({loaded.architecture}) without a language-model "
            f"head: it cannot generate, so its tokens cannot be verified by prompting")
    if choice.engine == "llamacpp":
        from .llamacpp_engine import load_llamacpp

        return load_llamacpp(loaded, progress, cancel)
    if choice.engine == "server":
        from .server_engine import connect

        return connect(loaded, choice.server, choice.api_key_env, choice.concurrency, progress, cancel,
                       choice.rate_limit, choice.api_key_keyring)
    return load_probe_model(loaded, choice.precision, progress, cancel, choice.device)
