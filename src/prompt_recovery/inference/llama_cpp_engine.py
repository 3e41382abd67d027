"""The llama.cpp engine: greedy decoding with llama.cpp on a GGUF file, fed the reference tokenizer's token ids.

    prompt-recovery recover --examples --backend llama-cpp      # the default where llama-cpp-python is installed
    prompt-recovery predict dev.csv -o pred.csv                 # (auto: llama-cpp for the GGUF preset on a CPU)

llama.cpp runs through ``llama-cpp-python`` (its private ``_internals`` API, hence the exact pin),
built by scripts/setup.sh with its OpenBLAS backend (`cpu_probe`). One llama.cpp context ("worker")
per CPU thread on one shared model, all taking prompts from one queue; per worker up to 16 prompts
in flight, decoded together (one llama.cpp call per step for all of them), each prompt prefilled
reusing the KV cache of the prefix it shares with the previous prompt of its slot (the chat
template's system turn; `prefix_groups` puts prompts that share a long prefix, e.g. one original
rewritten several ways, into one slot). Needs a GGUF-backed model: the ``smollm2-135m`` preset or a
``.gguf`` file; the LoRA adapter is merged into it once (`gguf_merge.merged_gguf`, cached).
Outputs equal the transformers engine's token for token with f32 weights (tests/test_backend.py).

Environment knobs: PROMPT_RECOVERY_THREADS (CPU threads, default the idle cores),
PROMPT_RECOVERY_LLAMA_WORKERS (contexts, default one per thread), PROMPT_RECOVERY_LLAMA_SEQS
(prompts in flight per worker, default 16). Measurements behind the defaults: docs/speed.md.
"""

from __future__ import annotations

import atexit
import os
import weakref
from pathlib import Path
from typing import Sequence

from prompt_recovery import models
from prompt_recovery.errors import UserError
from prompt_recovery.inference import cpu_probe
from prompt_recovery.inference.gguf_merge import gguf_source, gguf_type, merged_gguf

KV_CELLS = 16384  # llama.cpp KV-cache cells over all workers and sequences (memory: docs/speed.md)
MIN_WORKER_CELLS = 1024  # ... but at least this many per worker
MAX_WORKERS = 8  # default cap on llama.cpp workers (each adds a context: KV cache + compute buffers)

_OPEN: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # free llama.cpp models before interpreter teardown (Llama.__del__ then fails noisily)
    for b in list(_OPEN):
        b.close()


GROUP_MIN_SHARED = 32  # prompts sharing this many tokens beyond the prefix common to all run in one slot


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def prefix_groups(ids: Sequence[Sequence[int]], min_shared: int = GROUP_MIN_SHARED) -> list[list[int]]:
    """Prompt indices in groups that share a long prefix (e.g. one original text rewritten in
    several ways: the prompt starts with the original), each group in ascending order, groups in
    order of their first index. Every index is in exactly one group. A group runs in one KV-cache
    slot, so each prompt after the first only processes the tokens after the shared prefix."""
    if not ids:
        return []
    order = sorted(range(len(ids)), key=lambda i: list(ids[i]))
    common = _lcp(ids[order[0]], ids[order[-1]])  # shared by all (the chat template's system turn)
    groups: list[list[int]] = []
    for prev, i in zip([None] + order[:-1], order):
        shared = _lcp(ids[prev], ids[i]) if prev is not None else -1
        if shared >= common + min_shared or shared == len(ids[i]):  # (or a repeated prompt)
            groups[-1].append(i)
        else:
            groups.append([i])
    return sorted((sorted(g) for g in groups), key=lambda g: g[0])


def plan_workers(threads: int, workers: int | None = None, blas: bool = False) -> tuple[int, int]:
    """(threads used, llama.cpp workers) for `threads` CPU threads.

    Workers: `workers`, else $PROMPT_RECOVERY_LLAMA_WORKERS (threads are split between them), else
    one per thread up to MAX_WORKERS. With the OpenBLAS build and no explicit worker count, every
    worker gets exactly one thread: a worker with several threads runs llama.cpp's OpenMP pool and
    OpenBLAS's pthread pool side by side, and they spin against each other (docs/speed.md), so
    cores beyond MAX_WORKERS stay unused rather than slow everything down."""
    threads = max(1, threads)
    n = workers or int(os.environ.get("PROMPT_RECOVERY_LLAMA_WORKERS", 0))
    if n:
        return threads, max(1, min(n, threads))
    n = min(threads, MAX_WORKERS)
    return (n if blas else threads), n


class _Worker:
    """One llama.cpp context on the shared model: `n_seq` KV-cache sequences (slots) of `n_ctx` cells,
    `n_threads` threads. Used by one Python thread at a time."""

    def __init__(self, engine: "LlamaCppBackend", n_ctx: int, n_threads: int):
        self.engine, self.n_threads = engine, n_threads
        self._lib, self._internals = engine._lib, engine._internals
        self.ctx = None
        self._make_context(n_ctx)  # sets n_seq, n_ctx (per sequence) and the slots' cached tokens
        self.batch = self._internals.LlamaBatch(n_tokens=max(engine.n_batch, engine._n_seq_wanted), embd=0,
                                                n_seq_max=1, verbose=False)

    def _make_context(self, n_ctx_per_seq: int) -> None:
        """A fresh context of `n_seq` sequences of `n_ctx_per_seq` KV cells each (empty caches).

        Fewer sequences are kept in flight for long prompts, so the KV cache stays within the worker's
        share of KV_CELLS."""
        lib, e = self._lib, self.engine
        if self.ctx is not None:
            self.ctx.close()
            self.ctx = None
        self.n_seq = max(1, min(e._n_seq_wanted, e.worker_cells // n_ctx_per_seq))
        cp = lib.llama_context_default_params()
        cp.n_ctx = n_ctx_per_seq * self.n_seq
        cp.n_batch = cp.n_ubatch = e.n_batch
        cp.n_seq_max = self.n_seq
        cp.kv_unified = False  # one KV stream per sequence: attention only over its own cells
        cp.n_threads = cp.n_threads_batch = self.n_threads
        cp.flash_attn_type = (lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if e.flash_attn
                              else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        cp.no_perf = True
        self.ctx = self._internals.LlamaContext(model=e.model, params=cp, verbose=False)
        self.n_ctx = n_ctx_per_seq
        self._slot_tokens: list[list[int]] = [[] for _ in range(self.n_seq)]

    def fit(self, need: int) -> None:
        """Grow the per-sequence context to hold `need` tokens (a power of two)."""
        if need > self.n_ctx:
            self._make_context(min(self.engine.model.n_ctx_train(), 1 << (need - 1).bit_length()))

    def close(self) -> None:
        for attr in ("batch", "ctx"):
            obj = getattr(self, attr, None)
            if obj is not None:
                obj.close()
                setattr(self, attr, None)

    def _argmax(self, i: int) -> int:
        import numpy as np

        logits = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self.ctx.ctx, i), shape=(self.engine.n_vocab,))
        return int(logits.argmax())

    def _prefill(self, slot: int, prompt: list[int]) -> int:
        """Put `prompt` into sequence `slot` (reusing its cached common prefix); the greedy next token."""
        k = min(_lcp(self._slot_tokens[slot], prompt), len(prompt) - 1)  # the last token is always fed
        self._lib.llama_memory_seq_rm(self.ctx.memory, slot, k, -1)
        b, n_batch = self.batch.batch, self.engine.n_batch
        for start in range(k, len(prompt), n_batch):
            chunk = prompt[start:start + n_batch]
            b.n_tokens = len(chunk)
            for j, t in enumerate(chunk):
                b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = t, start + j, 1, False
                b.seq_id[j][0] = slot
            b.logits[len(chunk) - 1] = True
            self.ctx.decode(self.batch)
        self._slot_tokens[slot] = list(prompt)
        return self._argmax(b.n_tokens - 1)

    def run(self, ids, take, out, max_new_tokens: int, done, stop) -> None:
        """Greedy-decode prompts `ids[i]` into `out[i]`, up to `n_seq` at once (continuous batching);
        `done(i)` when prompt i is finished. `take()` gives the next group of prompt indices (None
        when there are none left): a group's prompts share a long prefix and run one after another
        in one slot, each reusing the KV cache of the prefix it shares with the previous one."""
        eos = self.engine.tokenizer.eos_token_id
        slots: list[int | None] = [None] * self.n_seq  # prompt index per slot
        pending: list[list[int]] = [[] for _ in range(self.n_seq)]  # the rest of each slot's group
        exhausted = False
        while not stop.is_set():
            for s in range(self.n_seq):
                while slots[s] is None and not stop.is_set():
                    if pending[s]:
                        i = pending[s].pop(0)
                    elif exhausted:
                        break
                    else:
                        group = take()
                        if group is None:
                            exhausted = True
                            break
                        i, pending[s] = group[0], list(group[1:])
                    nxt = self._prefill(s, list(ids[i]))
                    if nxt == eos:
                        done(i)
                        continue
                    out[i].append(nxt)
                    if len(out[i]) >= max_new_tokens:
                        done(i)
                        continue
                    slots[s] = i
            active = [s for s in range(self.n_seq) if slots[s] is not None]
            if not active:
                return
            b = self.batch.batch
            b.n_tokens = len(active)
            for j, s in enumerate(active):
                t = out[slots[s]][-1]
                b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = t, len(self._slot_tokens[s]), 1, True
                b.seq_id[j][0] = s
                self._slot_tokens[s].append(t)
            self.ctx.decode(self.batch)
            for j, s in enumerate(active):
                i = slots[s]
                nxt = self._argmax(j)
                if nxt == eos:
                    slots[s] = None
                    done(i)
                    continue
                out[i].append(nxt)
                if len(out[i]) >= max_new_tokens:
                    slots[s] = None
                    done(i)


class LlamaCppBackend:
    """Greedy decoding with llama.cpp on a GGUF file, fed the reference tokenizer's token ids.

    The model is loaded once; `workers` llama.cpp contexts on it (default: one per thread, each
    single-threaded) take prompts from one shared queue, each in its own Python thread (llama.cpp
    releases the GIL). Per worker, up to `n_seq` prompts are in flight, each in its own KV-cache
    sequence (slot): every decoding step feeds one token per active sequence in a single
    `llama_decode` call, so the weights are read once per step for all of them (continuous
    batching: a finished sequence's slot takes the next prompt at once). Each prompt is prefilled on
    its own (logits of its last token only), reusing the KV cache of the prefix it shares with the
    slot's previous prompt (the chat template's system turn). Greedy: argmax of the logits, stop at
    EOS or after max_new_tokens. Outputs do not depend on the number of workers or slots.
    """

    name = "llama-cpp"

    def __init__(self, gguf_file: str | Path, tokenizer, n_ctx: int = 512, n_threads: int | None = None,
                 n_seq: int | None = None, n_batch: int = 512, flash_attn: bool = True,
                 workers: int | None = None):
        cpu_probe.load_openblas()
        from llama_cpp import _internals, llama_cpp as lib
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp's load/context logs: errors only
        self.tokenizer = tokenizer
        self.gguf_file = str(gguf_file)
        self.n_threads, n_workers = plan_workers(n_threads or cpu_probe.default_threads(), workers,
                                                   cpu_probe.llama_cpp_has_blas())
        self._n_seq_wanted = max(1, min(n_seq or int(os.environ.get("PROMPT_RECOVERY_LLAMA_SEQS", 16)),
                                        lib.llama_max_parallel_sequences()))
        self.worker_cells = max(MIN_WORKER_CELLS, KV_CELLS // n_workers)  # KV-cache cells per worker
        self.n_batch = n_batch
        self.flash_attn = flash_attn
        self._lib, self._internals = lib, _internals
        mp = lib.llama_model_default_params()
        self.model = _internals.LlamaModel(path_model=self.gguf_file, params=mp, verbose=False)
        self.n_vocab = self.model.n_vocab()
        per, extra = divmod(self.n_threads, n_workers)  # threads per worker; the first `extra` get one more
        self.workers = [_Worker(self, n_ctx, per + (k < extra)) for k in range(n_workers)]
        _OPEN.add(self)

    @property
    def n_seq(self) -> int:
        """Prompts in flight per worker."""
        return self.workers[0].n_seq

    @property
    def capacity(self) -> int:
        """Prompts in flight, all workers together."""
        return sum(w.n_seq for w in self.workers)

    @property
    def n_ctx(self) -> int:
        """KV-cache cells per sequence."""
        return self.workers[0].n_ctx

    def describe(self) -> str:
        core = cpu_probe.openblas_core()
        blas = f", OpenBLAS {core}" if core and cpu_probe.llama_cpp_has_blas() else ""
        w = len(self.workers)
        return (f"{self.n_threads} thread{'s' * (self.n_threads > 1)}, {w} worker{'s' * (w > 1)} x "
                f"{self.n_seq} prompts in flight{blas}")

    def close(self) -> None:
        for w in getattr(self, "workers", []):
            w.close()
        if getattr(self, "model", None) is not None:
            self.model.close()
            self.model = None

    def generate_tokens(self, ids: Sequence[Sequence[int]], max_new_tokens: int, bar=None) -> list[list[int]]:
        """Greedy new token ids (EOS excluded) for each prompt, in input order."""
        import threading
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        if any(len(p) == 0 for p in ids):
            raise UserError("empty prompt (no token ids)")
        out: list[list[int]] = [[] for _ in ids]
        if max_new_tokens <= 0 or not ids:
            return out
        need = max(len(p) for p in ids) + max_new_tokens
        limit = self.model.n_ctx_train()
        if need > limit:
            raise UserError(f"prompt of {need - max_new_tokens} tokens + {max_new_tokens} new tokens exceeds "
                            f"the model's context of {limit}; use a shorter prompt format or --max-new-tokens")
        lock, stop = threading.Lock(), threading.Event()
        queue = iter(prefix_groups(ids))

        def take():
            with lock:
                return next(queue, None)

        def done(i):
            if bar is not None:
                with lock:
                    bar.update(1)

        workers = self.workers[:len(ids)]
        for w in workers:
            w.fit(need)
        if len(workers) == 1:
            workers[0].run(ids, take, out, max_new_tokens, done, stop)
            return out
        with ThreadPoolExecutor(len(workers), thread_name_prefix="llama-cpp") as ex:
            futures = [ex.submit(w.run, ids, take, out, max_new_tokens, done, stop) for w in workers]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:  # an error in one worker, or Ctrl-C: the others stop after their current step
                stop.set()
            for f in futures:
                f.result()
        return out

    def generate_many(self, ids, max_new_tokens, batch_size=8, progress=False, num_return_sequences=1,
                      **gen_kwargs) -> list[list[str]]:
        """One greedy continuation per prompt; several (beam search, sampling) are the transformers engine's."""
        if num_return_sequences != 1:
            raise UserError("--candidates above 1 needs beam search or sampling, which the llama-cpp backend does "
                            "not offer; use --backend transformers")
        return [[t] for t in self.generate(ids, max_new_tokens, batch_size, progress, **gen_kwargs)]

    def generate(self, ids, max_new_tokens, batch_size=8, progress=False, **gen_kwargs):
        from tqdm.auto import tqdm

        if gen_kwargs:
            raise UserError(f"the llama-cpp backend does not support {', '.join(gen_kwargs)}; "
                            f"use --backend transformers")
        with tqdm(total=len(ids), unit="pair", disable=not progress, desc="recover") as bar:
            toks = self.generate_tokens(ids, max_new_tokens, bar)
        return [self.tokenizer.decode(t, skip_special_tokens=True) for t in toks]


def load_llama_cpp(model: str, adapter: str | None = "default", n_threads: int | None = None,
                   weight_type: str | None = None):
    """(Loaded without a torch model, LlamaCppBackend) for a GGUF-backed model (+ LoRA adapter merged).

    `weight_type`: the merged GGUF's weight type (see `gguf_merge.gguf_type`; default $PROMPT_RECOVERY_GGUF_TYPE
    or `gguf_merge.default_gguf_type()`)."""
    base = gguf_source(model)
    if base is None:
        raise UserError(f"{model!r} is not GGUF-backed; the llama-cpp backend needs smollm2-135m or a .gguf file")
    adapter_path = models.resolve_adapter(model, adapter)
    if adapter_path and not Path(adapter_path).is_dir():
        raise UserError(f"the llama-cpp backend needs a local adapter directory, not {adapter_path!r}")
    tok = models.load_tokenizer(model)
    qtype = gguf_type(weight_type)
    engine = LlamaCppBackend(merged_gguf(base, adapter_path, weight_type=qtype), tok, n_threads=n_threads)
    loaded = models.Loaded(None, tok, model, str(base), adapter_path, models.model_meta(str(base), adapter_path),
                           "cpu", f"{qtype} GGUF, {engine.describe()}")
    return loaded, engine
