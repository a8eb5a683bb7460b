"""Running a step in a child process: for work that holds Python's GIL for seconds in native code
(the Rust tokenizer, transformers' GGUF conversion, numba's UMAP), so that the application stays
responsive, a cancel stops it at once (the child is terminated), and a crash of a native library
cannot take the application down."""

from __future__ import annotations

import multiprocessing as mp
import sys
from contextlib import contextmanager
from queue import Empty
from typing import Any, Callable, Iterator

from .errors import GlitchViewError
from .progress import CancelToken, ProgressFn, no_progress


def _child_main(target: Callable[..., None], args: tuple, messages: Any) -> None:
    def progress(fraction: float, message: str) -> None:
        messages.put(("progress", (fraction, message)))

    try:
        target(*args, progress)
    except BaseException as exc:  # reported to the parent, which re-raises it
        try:
            messages.put(("error", exc))
        except Exception:  # an exception that cannot be pickled: send its text
            messages.put(("error", GlitchViewError(f"{type(exc).__name__}: {exc}")))
        messages.close()
        messages.join_thread()
        sys.exit(1)
    messages.close()
    messages.join_thread()


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Stop `spawn` from re-running the user's main script in the child: our targets live in
    importable modules, and a script without an `if __name__ == "__main__"` guard (or a notebook)
    would otherwise run again, or fail, in every child."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    hide = main is not None and path is not None and getattr(main, "__spec__", None) is None
    if hide:
        del main.__file__
    try:
        yield
    finally:
        if hide:
            main.__file__ = path


def run_in_child(target: Callable[..., None], args: tuple, what: str, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> None:
    """Run `target(*args, progress)` (a module-level function) in a spawned child process, relaying
    its progress; terminate it on cancel (raising `Cancelled`); re-raise its exception on failure."""
    cancel = cancel or CancelToken()
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    child = ctx.Process(target=_child_main, args=(target, args, messages), daemon=True)
    with _main_script_hidden():
        child.start()
    error: BaseException | None = None

    def drain(timeout: float) -> None:
        nonlocal error
        try:
            kind, payload = messages.get(timeout=timeout)
        except Empty:
            return
        if kind == "progress":
            progress(*payload)
        else:
            error = payload

    try:
        while child.is_alive():
            if cancel.cancelled:
                child.terminate()
                child.join(5)
                cancel.check()
            drain(0.1)
        child.join()
        while error is None and not messages.empty():
            drain(0.1)
    finally:
        if child.is_alive():
            child.kill()
    if error is not None:
        raise error
    if child.exitcode != 0:
        raise GlitchViewError(f"{what} failed: its worker process ended with exit code {child.exitcode}")
