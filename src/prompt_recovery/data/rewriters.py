"""Rewriter backends: the LLM that applies a rewrite prompt to an original text.

    python -c "from prompt_recovery.data.rewriters import LocalRewriter; r = LocalRewriter(); print(r.complete(['Make this formal: hey, how r u?']))"
    # any OpenAI-compatible server (vLLM, llama.cpp server, Ollama), e.g. Gemma-7b-it like the competition:
    #   vllm serve google/gemma-7b-it --port 8001
    prompt-recovery generate --rewriter http --endpoint http://127.0.0.1:8001/v1 --api-model google/gemma-7b-it ...

Both expose `name` (recorded in the `rewriter` column) and `complete(user_messages) -> list[str]`:
one single-turn chat completion per message, in order; `make_rewriter` builds either from options
(`generate` and replay verification alike), and `REQUEST_TEMPLATE` is the one message layout.

* `LocalRewriter`: a transformers model through `prompt_recovery.models.load` (presets such as
  `smollm2-135m` (default) or `gemma3-270m`, adapter none), its chat template (a plain
  "...\\n\\nAnswer:" prompt when it has none), batched left-padded generation, sampling with
  `temperature` (0 = greedy), seeded.
* `HTTPRewriter`: POST `{endpoint}/chat/completions` with `seed` (OpenAI, vLLM, llama.cpp's
  server and Ollama use it for reproducible sampling); `concurrency` requests in flight, a `timeout`
  per request, `retries` retries on timeouts, connection errors, 429 and 5xx. Between attempts it
  waits with exponential backoff and jitter: a random time between half and all of `backoff`,
  2×`backoff`, 4×`backoff`, ... (at most `max_backoff`), so parallel requests do not retry in
  lockstep; when the answer carries `Retry-After` (seconds or an HTTP date) or `retry-after-ms`, it
  waits at least that long, and a server asking for more than `max_retry_after` seconds stops the
  run at once. An endpoint that is down, or still failing after the retries, stops the run with a
  one-line `UserError` naming the URL. Other 4xx answers fail at once. When one request of a batch
  fails, the requests not yet started are cancelled, those in flight finish, and the error
  (`RewriteFailed`) carries every finished answer (`done`, None where there is none), so
  `generate` writes the finished rows before it stops (rerun the command to resume).
  The API key is read from the environment variable named by `api_key_env` (if set).
"""

from __future__ import annotations

import logging
import os
import random
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from prompt_recovery import models
from prompt_recovery.errors import UserError

log = logging.getLogger(__name__)

# The message a rewriter is sent for one rewrite: the competition's layout. `generate` sends it to make
# training triples (its --request-template default), replay verification (`search.replay`) to replay a
# candidate instruction.
REQUEST_TEMPLATE = "{prompt}\n\n{text}"
REWRITERS = ("local", "http")


def make_rewriter(kind: str = "local", model: str = "smollm2-135m", endpoint: str | None = None,
                  api_model: str = "default", *, max_new_tokens: int = 96, temperature: float = 0.0, seed: int = 0,
                  device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                  api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 4, timeout: float = 120.0,
                  retries: int = 3, backoff: float = 1.0, purpose: str = ""):
    """A `LocalRewriter` (`kind` "local": `model` without adapter) or an `HTTPRewriter` (`kind` "http": an
    OpenAI-compatible `endpoint`, `api_model`). The defaults are replay's: deterministic (temperature 0), 96
    new tokens; `generate` passes its options. `purpose` names the options in errors ("replay" ->
    --replay-rewriter, --replay-endpoint)."""
    flag = f"--{purpose}-" if purpose else "--"
    if kind == "http":
        if not endpoint:
            raise UserError(f"{flag}rewriter http needs {flag}endpoint URL (an OpenAI-compatible /v1 base URL)")
        return HTTPRewriter(endpoint, api_model, api_key_env, concurrency, timeout, retries, backoff, max_new_tokens,
                            temperature, seed)
    if kind != "local":
        what = f"{purpose} rewriter" if purpose else "rewriter"
        raise UserError(f"unknown {what} {kind!r}; choose one of: {', '.join(REWRITERS)}")
    return LocalRewriter(model, device, dtype, max_new_tokens, temperature, batch_size, seed)


class RewriteFailed(UserError):
    """A request of a batch failed for good; `done` holds the batch's finished answers (None where there is none)."""

    def __init__(self, message: str, done: list[str | None]):
        super().__init__(message)
        self.done = done


def retry_after(headers, now: float | None = None) -> float | None:
    """Seconds a server asks the client to wait: `retry-after-ms`, else `Retry-After` (seconds or an HTTP date)."""
    headers = {str(k).lower(): v for k, v in headers.items()}
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class LocalRewriter:
    def __init__(self, model: str = "smollm2-135m", device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int = 256, temperature: float = 0.7, batch_size: int = 4, seed: int = 0,
                 loaded=None):
        self.loaded = loaded if loaded is not None else models.load(model, adapter="none", device=device, dtype=dtype)
        self.model, self.tok = self.loaded.model, self.loaded.tokenizer
        self.name = f"local:{model}"
        self.max_new_tokens, self.temperature, self.batch_size, self.seed = max_new_tokens, temperature, batch_size, seed
        self.tok.padding_side = "left"
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self._calls = 0

    def render(self, message: str) -> str:
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                                add_generation_prompt=True)
        return f"{self.tok.bos_token or ''}{message}\n\nAnswer:\n"  # a base model: its begin token, as in training

    def complete(self, messages: list[str]) -> list[str]:
        import torch

        out: list[str] = []
        for i in range(0, len(messages), self.batch_size):
            chunk = [self.render(m) for m in messages[i:i + self.batch_size]]
            enc = self.tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
            kw = dict(max_new_tokens=self.max_new_tokens, pad_token_id=self.tok.pad_token_id)
            if self.temperature > 0:
                kw.update(do_sample=True, temperature=self.temperature, top_p=0.95)
                torch.manual_seed(self.seed * 100_003 + self._calls)
            else:
                kw.update(do_sample=False)
            self._calls += 1
            with torch.no_grad():
                gen = self.model.generate(**enc, **kw)
            new = gen[:, enc["input_ids"].shape[1]:]
            out += [t.strip() for t in self.tok.batch_decode(new, skip_special_tokens=True)]
        return out


class HTTPRewriter:
    def __init__(self, endpoint: str, model: str = "default", api_key_env: str | None = "OPENAI_API_KEY",
                 concurrency: int = 4, timeout: float = 120.0, retries: int = 3, backoff: float = 1.0,
                 max_new_tokens: int = 256, temperature: float = 0.7, seed: int | None = 0,
                 max_backoff: float = 60.0, max_retry_after: float = 600.0, transport=None):
        import httpx

        if not endpoint.startswith(("http://", "https://")):
            raise UserError(f"--endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {endpoint!r}")
        self.url = endpoint.rstrip("/") + "/chat/completions"
        self.endpoint = endpoint.rstrip("/")
        self.model, self.concurrency, self.retries, self.backoff = model, max(1, concurrency), retries, backoff
        self.max_backoff, self.max_retry_after = max_backoff, max_retry_after
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.name = f"http:{model}"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers, transport=transport,
                                   limits=httpx.Limits(max_connections=self.concurrency))
        self.timeout = timeout
        self._rng = random.Random()  # jitter only: it never changes what is generated
        self._sleep = time.sleep

    def close(self) -> None:
        self.client.close()

    def body(self, message: str) -> dict:
        body = {"model": self.model, "messages": [{"role": "user", "content": message}],
                "max_tokens": self.max_new_tokens, "temperature": self.temperature}
        if self.seed is not None:
            body["seed"] = self.seed
        return body

    def delay(self, attempt: int, asked: float | None = None) -> float:
        """Seconds to wait before retry `attempt` (1, 2, ...): exponential backoff with jitter (half to all
        of backoff * 2**(attempt-1), capped at max_backoff), but at least what the server asked for."""
        d = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        d = self._rng.uniform(d / 2, d)
        return max(d, asked) if asked is not None else d

    def _post(self, message: str) -> str:
        import httpx

        body = self.body(message)
        last, asked = "", None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.delay(attempt, asked))
            asked = None
            try:
                r = self.client.post(self.url, json=body)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout:g} s"
                continue
            except httpx.TransportError as e:
                last = f"cannot connect ({type(e).__name__}: {str(e) or 'connection failed'}); is the server running?"
                continue
            if r.status_code == 429 or r.status_code >= 500:
                last = f"HTTP {r.status_code}: {r.text[:200].strip()}"
                asked = retry_after(r.headers)
                if asked is not None and asked > self.max_retry_after:
                    raise UserError(f"rewriter endpoint {self.url} answered {last} and asks to wait {asked:.0f} s "
                                    f"(Retry-After), more than {self.max_retry_after:g} s; rerun the command later "
                                    "to resume")
                continue
            if r.status_code >= 400:
                raise UserError(f"rewriter endpoint {self.url} answered HTTP {r.status_code}: {r.text[:200].strip()}")
            try:
                return str(r.json()["choices"][0]["message"]["content"] or "").strip()
            except (ValueError, KeyError, IndexError, TypeError):
                raise UserError(f"rewriter endpoint {self.url} gave an answer that is not an OpenAI chat completion: "
                                f"{r.text[:200].strip()}") from None
        raise UserError(f"rewriter endpoint {self.url} failed after {self.retries + 1} attempt(s): {last}")

    def complete(self, messages: list[str]) -> list[str]:
        """One answer per message, in order. When a request fails for good, the requests not yet started are
        cancelled, those in flight finish, and `RewriteFailed` carries the finished answers."""
        done: list[str | None] = [None] * len(messages)
        if len(messages) <= 1 or self.concurrency == 1:
            for i, m in enumerate(messages):
                try:
                    done[i] = self._post(m)
                except UserError as e:
                    raise RewriteFailed(str(e), done) from None
            return done
        error: Exception | None = None
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._post, m): i for i, m in enumerate(messages)}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in finished:
                    if f.cancelled():
                        continue
                    if f.exception() is None:
                        done[futures[f]] = f.result()
                    elif error is None:
                        error = f.exception()
                        for other in pending:
                            other.cancel()  # not started yet: dropped; in flight: they finish
        if error is None:
            return done
        if isinstance(error, UserError):
            raise RewriteFailed(str(error), done) from None
        raise error
