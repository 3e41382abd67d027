"""Rewriter backends: the LLM that applies a rewrite prompt to an original text.

    python -c "from prompt_recovery.data.rewriters import LocalRewriter; r = LocalRewriter(); print(r.complete(['Make this formal: hey, how r u?']))"
    # any OpenAI-compatible server (vLLM, llama.cpp server, Ollama), e.g. Gemma-7b-it like the competition:
    #   vllm serve google/gemma-7b-it --port 8001
    prompt-recovery generate --rewriter http --endpoint http://127.0.0.1:8001/v1 --api-model google/gemma-7b-it ...

Both expose `name` (recorded in the `rewriter` column) and `complete(user_messages) -> list[str]`:
one single-turn chat completion per message, in order.

* `LocalRewriter`: a transformers model through `prompt_recovery.models.load` (presets such as
  `smollm2-135m` (default) or `gemma3-270m`, adapter none), its chat template (a plain
  "...\\n\\nAnswer:" prompt when it has none), batched left-padded generation, sampling with
  `temperature` (0 = greedy), seeded.
* `HTTPRewriter`: POST `{endpoint}/chat/completions`; `concurrency` requests in flight, a
  `timeout` per request, `retries` retries on timeouts, connection errors, 429 and 5xx with
  exponential backoff (`backoff`, 2×`backoff`, 4×`backoff`, ...). An endpoint that is down, or
  still failing after the retries, stops the run with a one-line `UserError` naming the URL
  (rows already written are kept; rerun the command to resume). Other 4xx answers fail at once.
  The API key is read from the environment variable named by `api_key_env` (if set).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from prompt_recovery.errors import UserError

log = logging.getLogger(__name__)


class LocalRewriter:
    def __init__(self, model: str = "smollm2-135m", device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int = 256, temperature: float = 0.7, batch_size: int = 4, seed: int = 0,
                 loaded=None):
        from prompt_recovery.models import load

        self.loaded = loaded if loaded is not None else load(model, adapter="none", device=device, dtype=dtype)
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
        return f"{message}\n\nAnswer:\n"

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
                 max_new_tokens: int = 256, temperature: float = 0.7, seed: int = 0):
        import httpx

        if not endpoint.startswith(("http://", "https://")):
            raise UserError(f"--endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {endpoint!r}")
        self.url = endpoint.rstrip("/") + "/chat/completions"
        self.endpoint = endpoint.rstrip("/")
        self.model, self.concurrency, self.retries, self.backoff = model, max(1, concurrency), retries, backoff
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.name = f"http:{model}"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers,
                                   limits=httpx.Limits(max_connections=self.concurrency))
        self.timeout = timeout

    def close(self) -> None:
        self.client.close()

    def _post(self, message: str) -> str:
        import httpx

        body = {"model": self.model, "messages": [{"role": "user", "content": message}],
                "max_tokens": self.max_new_tokens, "temperature": self.temperature}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
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
        if len(messages) <= 1 or self.concurrency == 1:
            return [self._post(m) for m in messages]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._post, messages))
