"""The server engine: the model as an OpenAI-compatible inference server runs it (vLLM, llama.cpp's
llama-server, llama-cpp-python's server), so that a model far larger than this machine is verified
where it is served.

The repetition test needs P(candidate | prompt) at the first position and at a few greedy positions
after it. The first comes, exactly, from prompt log-probabilities of the prompt with the candidate
appended: `echo` with `logprobs` on /v1/completions (vLLM), or vLLM's `prompt_logprobs` extension. A
server whose echoed log-probabilities are shifted by one position (llama-cpp-python 0.3: each prompt
token gets the probability the model gives it at the *next* position) or absent gets one generated
token forced to be the candidate by `logit_bias`, where the server reports the log-probability of a
generated token from the model's own scores, before the bias (source `bias`, exact; llama-cpp-python;
checked at `connect` on a token the model would never write there). Else the first position is read
through the top `TOP_LOGPROBS` log-probabilities of the first generated position (source `top`): a
candidate outside them gets the smallest of them, an upper bound, so no glitch verdict is made up.
Later positions come from the top log-probabilities of a greedy completion (outside them: 0). Prompts
go as token ids where the server takes them (vLLM, llama-server); a server that takes text only
(llama-cpp-python's) gets the prompt's text, checked through its tokenize endpoint to come back as
exactly those ids, else the token is reported as not testable there (a crash with that reason), never
judged. What the server supports is found out once, at `connect`, after the tokenizer check: the
server's tokenizer must tokenize a set of probe strings (fixed texts and pieces from across the
vocabulary) as the analysed model's does, or the server is refused.

Requests run in a bounded pool with a timeout, retries with backoff on connection errors, 429 and 5xx,
and an optional rate limit; cancelling stops queued requests and closes the connections of running
ones. The API key is read from the environment variable the user names or from the system keyring
(`keys`), held in memory only, and never written anywhere (its repr hides it)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import GlitchViewError
from ...progress import CancelToken, ProgressFn, no_progress
from .answers import span_prob
from .keys import api_key
from .sampling import GenerationSettings

if TYPE_CHECKING:
    from ...model.loading import LoadedModel

TOP_LOGPROBS = 20  # vLLM's default ceiling
NO_PENALTY = {"repeat_penalty": 1.0}  # llama-cpp-python's server penalises repeats by default (1.1); the test
# reads the model's own greedy answer, which may repeat the prompt's token
FORCE = 100  # the logit bias that makes the candidate the next token (OpenAI's API allows -100 to 100)
RETRIES = 4
COUNTING = ", ".join(str(k) for k in range(1, 25))  # every token after the first few is near certain
END = -1  # the token `stream` yields when the server ends the text itself (eos)
PROBE_TEXTS = ("The quick brown fox jumps over the lazy dog.", "  indented\n\tcode(x) = {'a': 1}  # ok",
               "Größe naïve café — 東京 🙂", "1234567890 3.14159 -0.5e10", "<|endoftext|> <s></s>")


class ServerError(GlitchViewError):
    """The server is unreachable, refuses the request, lacks what verification needs, or serves another tokenizer."""


@dataclass(frozen=True)
class Capabilities:
    by_id: bool  # prompts as token ids (else as text)
    prompt_logprobs: str  # "echo", "vllm", "bias" or "top" (see the module docstring)
    tokenize: str  # the tokenize endpoint used for the tokenizer check ("" when none)


class ServerClient:
    """JSON over HTTP to one server: a connection pool, timeouts, retries with backoff, rate limit, cancel."""

    def __init__(self, base_url: str, api_key: str = "", timeout_s: float = 120.0, concurrency: int = 8,
                 max_per_second: float = 0.0) -> None:
        import requests

        self.base = base_url.rstrip("/")
        self.root = self.base.removesuffix("/v1")
        self._key = api_key
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)
        self._interval = 1.0 / max_per_second if max_per_second > 0 else 0.0
        self._next_start = 0.0
        self._rate_lock = threading.Lock()
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self.concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="glitchview-server")

    def __repr__(self) -> str:  # never the key
        return f"ServerClient({self.base!r})"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    def _wait_for_rate(self) -> None:
        if not self._interval:
            return
        with self._rate_lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        time.sleep(max(0.0, start - now))

    def request(self, method: str, url: str, body: dict[str, Any] | None = None, cancel: CancelToken | None = None,
                stream: bool = False, retries: int = RETRIES) -> Any:
        """The response (JSON, or the open response when `stream`); `ServerError` with the server's words
        on a refusal (4xx other than 429) or after the retries."""
        import requests

        last = ""
        for attempt in range(retries):
            if cancel is not None:
                cancel.check()
            self._wait_for_rate()
            try:
                response = self._session.request(method, url, json=body, headers=self._headers(),
                                                 timeout=self.timeout_s, stream=stream)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response if stream else response.json()
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 429 and response.status_code < 500:
                    raise ServerError(f"{url} refused the request ({last})")
            if cancel is not None and cancel.cancelled:
                break
            time.sleep(min(0.5 * 2 ** attempt, 8.0))
        if cancel is not None:
            cancel.check()
        raise ServerError(f"no answer from {url} after {retries} tries ({last})")

    def interrupt(self) -> None:
        """Close the open connections: running requests end with an error at once (the client stays usable)."""
        self._session.close()

    def close(self) -> None:
        """Stop queued requests and close the connections (running requests end with an error)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()


class ServerEngine:
    """Verification and generation through an OpenAI-compatible /v1/completions endpoint."""

    name = "server"

    def __init__(self, client: ServerClient, model: str, tokenizer: Any, vocab_rows: int, caps: Capabilities,
                 bos: list[int]) -> None:
        self.client, self.model, self.caps = client, model, caps
        self.tokenizer = tokenizer
        self.vocab_rows = vocab_rows
        self.dtype_name = "as served"
        self._bos = bos  # what the server puts before a text prompt by itself
        self._specials = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}

    @property
    def description(self) -> str:
        how = "token ids" if self.caps.by_id else "text prompts"
        return f"server {self.client.base} ({self.model}; {how}, {self.caps.prompt_logprobs} log-probabilities)"

    def _prompt(self, ids: list[int], cancel: CancelToken | None = None) -> list[int] | str:
        """The prompt as the server takes it: the ids, or their text when the server tokenizes that text
        back into exactly these ids (checked through its tokenize endpoint)."""
        if self.caps.by_id:
            return ids
        if self._bos and ids[:len(self._bos)] == self._bos:
            ids = ids[len(self._bos):]
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        served = _tokenize(self.client, self.caps.tokenize, self.model, text, cancel)
        if self._bos and served[:len(self._bos)] == self._bos:
            served = served[len(self._bos):]
        if served != ids:
            where = next((i for i, (a, b) in enumerate(zip(served, ids)) if a != b), min(len(served), len(ids)))
            raise ServerError(f"not testable on this server: it takes text prompts only, and this prompt's text comes "
                              f"back as other tokens (from token {where}: {served[where:where + 2]} instead of "
                              f"{ids[where:where + 2]})")
        return text

    def _complete(self, body: dict[str, Any], cancel: CancelToken | None = None) -> dict[str, Any]:
        body = {"model": self.model, "temperature": 0.0, "return_tokens_as_token_ids": True, **NO_PENALTY, **body}
        choice = self.client.request("POST", f"{self.client.base}/completions", body, cancel)["choices"][0]
        return {**choice, "logprobs": completion_logprobs(choice)}

    def candidate_prob(self, row: list[int], target: int, text: str, cancel: CancelToken | None = None
                       ) -> float | None:
        """P(target | row), exactly: from the prompt log-probabilities of row + [target], or from the target
        forced as the next token (`bias`); None where the server gives neither (`top`, or a forced target
        it does not report, such as an end-of-text token that ends the answer)."""
        if self.caps.prompt_logprobs == "top":
            return None
        if self.caps.prompt_logprobs == "bias":
            return self._forced_prob(row, target, text, cancel)
        prompt = self._prompt(row + [target], cancel)
        if self.caps.prompt_logprobs == "vllm":
            choice = self._complete({"prompt": prompt, "max_tokens": 1, "prompt_logprobs": 0}, cancel)
            last = choice["prompt_logprobs"][-1]
            entry = last.get(str(target)) or next(iter(last.values()))
            return math.exp(entry["logprob"])
        choice = self._complete({"prompt": prompt, "max_tokens": 1, "echo": True, "logprobs": 1}, cancel)
        value = choice["logprobs"]["token_logprobs"][len(row)]
        return math.exp(value) if value is not None else 0.0

    def _forced_prob(self, row: list[int], target: int, text: str, cancel: CancelToken | None) -> float | None:
        choice = self._complete({"prompt": self._prompt(row, cancel), "max_tokens": 1, "logprobs": 1,
                                 "logit_bias": {str(target): FORCE}}, cancel)
        logprobs = choice.get("logprobs") or {}
        tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
        if not tokens or values[0] is None or not self._is_target(tokens[0], target, text):
            return None
        return math.exp(values[0])

    def _is_target(self, piece: str, target: int, text: str) -> bool:
        """Whether a written piece may be the target: its id or its text, or, for a special target, an
        empty piece (llama-cpp-python writes special tokens as empty text: any of them may be the target,
        so its probability is an upper bound, and exact only where the target was forced)."""
        if piece == f"token_id:{target}" or self._piece_text(piece) == text:
            return True
        return piece == "" and target in self._specials

    def greedy(self, row: list[int], steps: int, cancel: CancelToken | None = None
               ) -> tuple[list[str], np.ndarray, list[dict[str, float]]]:
        """`steps` greedy tokens after `row`: their texts, probabilities and top log-probabilities."""
        choice = self._complete({"prompt": self._prompt(row, cancel), "max_tokens": steps, "logprobs": TOP_LOGPROBS},
                                cancel)
        logprobs = choice["logprobs"]
        pieces = [self._piece_text(t) for t in logprobs["tokens"]]
        probs = np.exp(np.asarray([v if v is not None else -np.inf for v in logprobs["token_logprobs"]], dtype=np.float64))
        return pieces, probs.astype(np.float32), logprobs.get("top_logprobs") or [{}] * len(pieces)

    def _piece_text(self, token: str) -> str:
        """vLLM writes `token_id:123` when asked for ids; others write the token's text."""
        if token.startswith("token_id:") and token[9:].isdigit():
            return self.tokenizer.decode([int(token[9:])], skip_special_tokens=False)
        return token

    def _probe_row(self, row: list[int], target: int, text: str, steps: int, answer: str | None,
                   cancel: CancelToken) -> float:
        first = self.candidate_prob(row, target, text, cancel)
        exact = first is not None
        best = first or 0.0
        if steps > 1 or answer is not None or not exact:
            pieces, probs, tops = self.greedy(row, steps, cancel)
            for position, top in enumerate(tops[:steps]):
                if position == 0 and exact:
                    continue
                found = [lp for piece, lp in (top or {}).items() if self._is_target(piece, target, text)]
                if found:
                    best = max(best, math.exp(max(found)))
                elif position == 0 and top:  # outside the top: below the smallest of them
                    best = max(best, math.exp(min(top.values())))
            if not exact and not (tops and tops[0]):  # the model ended its text at once: no position 0
                best = max(best, self._first_position_bound(row, target, text, cancel))
            if answer is not None:
                best = max(best, span_prob(lambda s, e: "".join(pieces[s:e]), probs, answer))
        return best

    def _first_position_bound(self, row: list[int], target: int, text: str, cancel: CancelToken) -> float:
        """P(target | row) or an upper bound of it, when the greedy answer ended at once: the special tokens
        other than the target are banned (logit bias), which can only raise the target's share."""
        banned = {str(i): -100 for i in self._specials if i != target}
        choice = self._complete({"prompt": self._prompt(row, cancel), "max_tokens": 1, "logprobs": TOP_LOGPROBS,
                                 "logit_bias": banned}, cancel)
        top = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0]
        if not top:
            raise ServerError("not testable on this server: the model ends its text at once (with this token or "
                              "end-of-text) and the server reports no log-probabilities for an ended text")
        found = [lp for piece, lp in top.items() if self._is_target(piece, target, text)]
        return math.exp(max(found) if found else min(top.values()))

    def probe(self, rows: np.ndarray, targets: np.ndarray, steps: int, answers: list[str] | None = None,
              cancel: CancelToken | None = None) -> np.ndarray:
        """See `Engine.probe`: one or two requests per row, `concurrency` in flight; `cancel` stops the
        queued ones and closes the connections of those running."""
        cancel = cancel or CancelToken()
        batch = CancelToken()  # a failed row stops its batch (the caller retries it row by row)
        texts = [self.tokenizer.decode([int(t)], skip_special_tokens=False) for t in targets]
        jobs = [self.client.pool.submit(self._probe_row, rows[k].tolist(), int(targets[k]), texts[k], steps,
                                        answers[k] if answers is not None else None, batch) for k in range(len(rows))]
        try:
            pending = set(jobs)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                if cancel.cancelled:
                    self.client.interrupt()
                    cancel.check()
                if any(job.exception() is not None for job in done):
                    break
            return np.asarray([job.result() for job in jobs], dtype=np.float32)
        finally:
            batch.cancel()
            for job in jobs:
                job.cancel()

    def stream(self, prompt_ids: np.ndarray, settings: GenerationSettings,
               cancel: CancelToken) -> Iterator[tuple[int, float, float]]:
        """See `Engine.stream`: a streamed completion; the entropy is that of the top log-probabilities
        (a lower bound of the distribution's)."""
        body = {"model": self.model, "prompt": self._prompt([int(t) for t in prompt_ids], cancel), "stream": True,
                "max_tokens": settings.max_new_tokens, "temperature": 0.0 if settings.greedy else settings.temperature,
                "top_p": 1.0 if settings.greedy else settings.top_p, "seed": settings.seed,
                "logprobs": TOP_LOGPROBS, "return_tokens_as_token_ids": True, **NO_PENALTY}
        response = self.client.request("POST", f"{self.client.base}/completions", body, cancel, stream=True)
        try:
            for line in response.iter_lines():
                if cancel.cancelled:
                    return
                if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
                    continue
                choice = json.loads(line[5:])["choices"][0]
                logprobs = completion_logprobs(choice)
                tops = logprobs.get("top_logprobs") or [None] * len(logprobs.get("tokens") or [])
                for token, value, top in zip(logprobs.get("tokens") or [], logprobs.get("token_logprobs") or [], tops):
                    p = math.exp(value) if value is not None else float("nan")
                    top_p = np.exp(np.asarray(list((top or {}).values()), dtype=np.float64))
                    yield self._token_id(token), p, float(-(top_p * np.log(np.maximum(top_p, 1e-12))).sum())
                if choice.get("finish_reason") == "stop":
                    yield END, 1.0, 0.0
                    return
        finally:
            response.close()

    def _token_id(self, token: str) -> int:
        if token.startswith("token_id:") and token[9:].isdigit():
            return int(token[9:])
        ids = self.tokenizer.encode(token, add_special_tokens=False).ids
        return ids[0] if ids else END

    def eos_ids(self) -> set[int]:
        return {END}


# --- connecting: what the server supports, and whether it serves the analysed model's tokenizer --------------
def _served_model(client: ServerClient) -> str:
    listing = client.request("GET", f"{client.base}/models", retries=2)
    models = [m.get("id", "") for m in listing.get("data", [])]
    if not models:
        raise ServerError(f"{client.base}/models lists no model")
    return models[0]


TOKENIZE_ENDPOINTS = ("/tokenize", "/extras/tokenize")  # vLLM and llama-server; llama-cpp-python


def _tokenize(client: ServerClient, endpoint: str, model: str, text: str, cancel: CancelToken | None = None,
              retries: int = RETRIES) -> list[int]:
    body = {"model": model, "prompt": text, "add_special_tokens": False, "content": text, "input": text}
    answer = client.request("POST", f"{client.root}{endpoint}", body, cancel, retries=retries)
    if not isinstance(answer, dict) or not isinstance(answer.get("tokens"), list):
        raise ServerError(f"{client.root}{endpoint} answered without a token list")
    return [int(t) for t in answer["tokens"]]


def _server_tokens(client: ServerClient, model: str, text: str) -> tuple[str, list[int]] | None:
    """The server's tokens for `text` through whichever tokenize endpoint it has (None when none)."""
    for endpoint in TOKENIZE_ENDPOINTS:
        try:
            return endpoint, _tokenize(client, endpoint, model, text, retries=1)
        except ServerError:
            continue
    return None


def vocabulary_probes(tokenizer: Any, vocab_rows: int, pieces: int = 256) -> list[str]:
    """Probe strings: the fixed texts, and the texts of `pieces` ids spread over the vocabulary."""
    ids = np.linspace(0, vocab_rows - 1, pieces).astype(int)
    return [*PROBE_TEXTS, " ".join(tokenizer.decode([int(i)], skip_special_tokens=True) for i in ids)]


def check_tokenizer(client: ServerClient, model: str, tokenizer: Any, vocab_rows: int) -> tuple[str, list[int]]:
    """Refuse a server whose tokenizer differs from the analysed model's; returns the tokenize endpoint
    used and the ids the server puts before a text by itself (its BOS)."""
    probes = vocabulary_probes(tokenizer, vocab_rows)
    first = _server_tokens(client, model, probes[0])
    endpoint = first[0] if first is not None else ""
    bos: list[int] = []
    for k, text in enumerate(probes):
        if first is None:
            served = _echoed_tokens(client, model, tokenizer, text)
        else:
            served = first[1] if k == 0 else _tokenize(client, endpoint, model, text)
        plain = tokenizer.encode(text, add_special_tokens=False).ids
        special = tokenizer.encode(text, add_special_tokens=True).ids
        if served == special and special != plain:
            bos = special[:len(special) - len(plain)]
        elif served != plain:
            where = next((i for i, (a, b) in enumerate(zip(served, plain)) if a != b), min(len(served), len(plain)))
            raise ServerError(f"the server's model ({model}) tokenizes differently from the analysed model: probe "
                              f"{k + 1} {text[:40]!r} differs at token {where} ({served[where:where + 3]} there, "
                              f"{plain[where:where + 3]} here); verify on the server that serves this model")
    return endpoint, bos


def _echoed_tokens(client: ServerClient, model: str, tokenizer: Any, text: str) -> list[int]:
    """A server without a tokenize endpoint: the prompt's tokens as it echoes them (vLLM writes their ids)."""
    body = {"model": model, "prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1,
            "return_tokens_as_token_ids": True}
    try:
        logprobs = client.request("POST", f"{client.base}/completions", body, retries=2)["choices"][0]["logprobs"]
    except (ServerError, KeyError, IndexError, TypeError) as exc:
        raise ServerError(f"{client.base} has no tokenize endpoint and does not echo prompts: the tokenizer of its "
                          f"model cannot be checked against the analysed model's, so it is not used") from exc
    pieces = [t for t, offset in zip(logprobs["tokens"], logprobs["text_offset"]) if offset < len(text)]
    if all(p.startswith("token_id:") for p in pieces):
        return [int(p[9:]) for p in pieces]
    return [tid for p in pieces for tid in tokenizer.encode(p, add_special_tokens=False).ids]


def _capabilities(client: ServerClient, model: str, tokenizer: Any, endpoint: str) -> Capabilities:
    """Token-id prompts or text; exact prompt log-probabilities (echo, vLLM's prompt_logprobs), the
    unbiased log-probability of a token forced by logit bias, or the top log-probabilities of generated
    tokens; a server with none of them is refused."""
    ids = tokenizer.encode(COUNTING, add_special_tokens=False).ids
    url = f"{client.base}/completions"
    base = {"model": model, "max_tokens": 1, "temperature": 0.0}
    try:
        client.request("POST", url, {**base, "prompt": ids}, retries=2)
        by_id, prompt = True, ids
    except ServerError:
        by_id, prompt = False, COUNTING
    unlikely = _unlikely_token(tokenizer)
    caps = {"echo": {"echo": True, "logprobs": 1}, "vllm": {"prompt_logprobs": 0},
            "bias": {"logprobs": 1, "logit_bias": {str(unlikely): FORCE}}, "top": {"logprobs": 5}}
    for source, extra in caps.items():
        try:
            choice = client.request("POST", url, {**base, "prompt": prompt, **extra}, retries=2)["choices"][0]
        except ServerError:
            continue
        logprobs = completion_logprobs(choice)
        if source == "echo" and _echo_is_aligned(logprobs.get("token_logprobs") or [], len(ids)):
            return Capabilities(by_id, source, endpoint)
        if source == "vllm" and choice.get("prompt_logprobs"):
            return Capabilities(by_id, source, endpoint)
        if source == "bias" and _reports_unbiased(logprobs, unlikely, tokenizer):
            return Capabilities(by_id, source, endpoint)
        if source == "top" and (logprobs.get("top_logprobs") or [None])[0]:
            return Capabilities(by_id, source, endpoint)
    raise ServerError(f"{client.base} returns no log-probabilities (neither echo with logprobs, vLLM's prompt_logprobs "
                      f"nor logprobs of generated tokens): it cannot verify tokens")


def completion_logprobs(choice: dict[str, Any]) -> dict[str, Any]:
    """A choice's log-probabilities in the completions form: `tokens`, `token_logprobs`, and `top_logprobs` as
    piece -> log-probability. llama-server writes the chat form instead (`content`: one {id, token, logprob,
    top_logprobs} per generated token); its tokens become `token_id:N` pieces, exact as vLLM's ids."""
    logprobs = choice.get("logprobs") or {}
    content = logprobs.get("content")
    if "tokens" in logprobs or not isinstance(content, list):
        return logprobs

    def piece(entry: dict[str, Any]) -> str:
        return f"token_id:{entry['id']}" if isinstance(entry.get("id"), int) else str(entry.get("token", ""))

    return {"tokens": [piece(entry) for entry in content],
            "token_logprobs": [entry.get("logprob") for entry in content],
            "top_logprobs": [{piece(top): top["logprob"] for top in entry.get("top_logprobs") or []}
                             for entry in content]}


def _unlikely_token(tokenizer: Any) -> int:
    """A token no model writes after the counting prompt: the first piece of an unrelated word."""
    return tokenizer.encode(" banana", add_special_tokens=False).ids[0]


def _reports_unbiased(logprobs: dict[str, Any], forced: int, tokenizer: Any) -> bool:
    """Whether the server wrote the forced token and gave it the model's own (tiny) probability after the
    counting prompt, not the biased one (about 1): only then is a forced token's log-probability exact."""
    tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    if not tokens or values[0] is None:
        return False
    piece = tokens[0]
    written = int(piece[9:]) if piece.startswith("token_id:") and piece[9:].isdigit() else None
    if written != forced and piece != tokenizer.decode([forced], skip_special_tokens=False):
        return False
    return math.exp(values[0]) < 0.01


def _echo_is_aligned(values: list[float | None], prompt_tokens: int) -> bool:
    """Whether echoed log-probabilities belong to their own position: on a counting sequence nearly every
    later token is certain; shifted by one (each token scored as the next one), nearly none is."""
    later = [v for v in values[prompt_tokens // 2:prompt_tokens] if v is not None]
    return len(later) > 4 and float(np.median(np.exp(later))) > 0.5


def connect(loaded: LoadedModel, url: str, api_key_env: str = "", concurrency: int = 8,
            progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
            rate_limit: float = 0.0, api_key_keyring: bool = False) -> ServerEngine:
    """A server engine for `loaded`, after the tokenizer check and the detection of what the server supports
    (`rate_limit`: requests started per second at most, 0 for none)."""
    client = ServerClient(url, api_key(api_key_env, url if api_key_keyring else ""), concurrency=concurrency,
                          max_per_second=rate_limit)
    try:
        progress(0.2, f"Asking {client.base} which model it serves")
        model = _served_model(client)
        progress(0.5, f"Comparing the tokenizer of {model} with the analysed model's")
        rows = loaded.input_embeddings.shape[0]
        endpoint, bos = check_tokenizer(client, model, loaded.tokenizer, rows)
        caps = _capabilities(client, model, loaded.tokenizer, endpoint)
        if not endpoint and not caps.by_id:
            raise ServerError(f"{client.base} takes text prompts only and has no tokenize endpoint: its tokenizer "
                              f"cannot be checked against the analysed model's, so it is not used")
    except Exception:
        client.close()
        raise
    return ServerEngine(client, model, loaded.tokenizer, rows, caps, bos)
