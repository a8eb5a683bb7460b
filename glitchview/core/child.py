"""Running a step in a child process: for work that holds Python's GIL for seconds in native code
(the Rust tokenizer, transformers' GGUF conversion, numba's UMAP), so that the application stays
responsive, a cancel stops it at once (the child is terminated), and a crash of a native library
cannot take the application down."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from queue import Empty
from typing import Any

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
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the work is done and reported: the interpreter's teardown (~0.1 s) would only delay the parent


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
    run_in_children(target, [args], what, progress, cancel)


def run_in_children(target: Callable[..., None], shares: list[tuple], what: str, progress: ProgressFn = no_progress,
                    cancel: CancelToken | None = None) -> None:
    """`run_in_child` for several argument tuples at once, one child each (work split across cores);
    the first failure ends them all and is re-raised."""
    cancel = cancel or CancelToken()
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    children = [ctx.Process(target=_child_main, args=(target, args, messages), daemon=True) for args in shares]
    with _main_script_hidden():
        for child in children:
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
        elif error is None:
            error = payload

    def failed() -> bool:
        return error is not None or any(child.exitcode not in (None, 0) for child in children)

    try:
        while any(child.is_alive() for child in children) and not failed():
            if cancel.cancelled:
                break
            drain(0.02)  # returns at once on a message; the timeout bounds how late a child's end is noticed
        ended = [child.exitcode for child in children]  # before any is stopped: a failure's own exit code
        if cancel.cancelled or failed():
            for child in children:
                child.terminate()
        for child in children:
            child.join(5)
        cancel.check()
        while error is None and not messages.empty():
            drain(0.1)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    if error is not None:
        raise error
    for code in ended:
        if code not in (None, 0):
            raise GlitchViewError(f"{what} failed: its worker process ended with exit code {code}")
