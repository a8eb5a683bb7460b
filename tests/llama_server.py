"""An OpenAI-compatible server on 127.0.0.1, started on a free port for the engine tests and
bench/bench_probing.py, and stopped after: llama-cpp-python's (`python -m llama_cpp.server`) or llama.cpp's
own `llama-server` (`make llama-server` builds it into LLAMA_SERVER)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

LLAMA_SERVER = Path(__file__).resolve().parents[1] / "build" / "llama-server" / "bin" / "llama-server"
LLAMA_QUANTIZE = LLAMA_SERVER.with_name("llama-quantize")  # built beside it: bench_probing.py --gguf-types


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(gguf: Path, log: Path, api_key: str = "", timeout_s: float = 120.0,
                 binary: Path | None = None) -> Iterator[str]:
    """Serve `gguf` (with `api_key` when given) by llama-cpp-python, or by the llama-server `binary`;
    yields the base URL (…/v1). Its output goes to `log`."""
    port = free_port()
    threads = str(os.cpu_count() or 1)
    if binary is None:
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                   "--port", str(port), "--n_ctx", "4096", "--logits_all", "true", "--n_threads", threads]
        command += ["--api_key", api_key] if api_key else []
    else:
        command = [str(binary), "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                   "--ctx-size", "4096", "--threads", threads, "--no-webui"]
        command += ["--api-key", api_key] if api_key else []
    out = open(log, "wb")  # noqa: SIM115 (closed below)
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}  # see llamacpp_engine
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode} (see {log})")
            try:
                headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
                if requests.get(f"{base}/models", headers=headers, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not answer within {timeout_s:.0f} s (see {log})")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()
