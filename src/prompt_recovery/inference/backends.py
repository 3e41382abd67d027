"""Generation backends behind `Recoverer`: the reference transformers path and a fast llama.cpp path.

    prompt-recovery recover --examples --backend llama-cpp      # fast path (the default where installed)
    prompt-recovery recover --examples --backend transformers   # reference path

A backend turns tokenised prompts into decoded new text with greedy decoding, stopping at the
tokenizer's EOS token:

    backend.generate(list_of_prompt_token_ids, max_new_tokens) -> list[str]

Both backends receive the SAME prompt token ids (built by `prompting.prompt_ids` with the Hugging
Face tokenizer) and decode the generated ids with the same tokenizer, so post-processing sees the
same kind of text.

Backends (`--backend`):
  * ``transformers`` – `model.generate` in PyTorch, batched by prompt length (left padding).
    The reference: tests compare the fast path against it.
  * ``llama-cpp`` – llama.cpp through ``llama-cpp-python``, built by scripts/setup.sh with its
    OpenBLAS backend (prompt processing runs OpenBLAS's float32 GEMM). One llama.cpp context
    ("worker") per CPU thread on one shared model, all taking prompts from one queue; per worker up
    to 16 prompts in flight, decoded together (one llama.cpp call per step for all of them), each
    prompt prefilled reusing the KV cache of the prefix it shares with the previous prompt of its
    slot (the chat template's system turn). Needs a GGUF-backed model: the ``smollm2-135m`` preset
    or a ``.gguf`` file. The LoRA adapter is merged into the GGUF weights once and the merged file
    is cached under ``$PROMPT_RECOVERY_CACHE/gguf/`` (default ``~/.cache/prompt-recovery``), keyed
    by the content hash of base file, adapter and weight type.
  * ``auto`` (default) – ``llama-cpp`` when it is installed and the model is GGUF-backed, else
    ``transformers`` (with a one-line notice on stderr when only the engine is missing).

The merged GGUF's weights are de-quantized from the packaged file to float32, the LoRA delta is
added, and the 2-D weights are stored as ``$PROMPT_RECOVERY_GGUF_TYPE`` (default ``f32`` with the
OpenBLAS build: the reference's exact weights; ``f16`` with a plain llama.cpp build; ``bf16`` and
``q8_0`` are faster but change some answers); norms and the token embedding / output head stay
float32. Environment knobs: PROMPT_RECOVERY_GGUF_TYPE, PROMPT_RECOVERY_THREADS (CPU threads, default
the idle cores), PROMPT_RECOVERY_LLAMA_WORKERS (contexts, default one per thread),
PROMPT_RECOVERY_LLAMA_SEQS (prompts in flight per worker, default 16),
PROMPT_RECOVERY_OPENBLAS_CORETYPE (OpenBLAS kernels, default from the CPU flags). The
measurements behind these defaults (speed, agreement with the reference, memory) are in
docs/speed.md.

    python -m prompt_recovery.inference.backends --check-llama-cpp   # is the OpenBLAS build installed and loading?
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import logging
import os
import sys
import time
import weakref
from pathlib import Path
from typing import Protocol, Sequence

from prompt_recovery.errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "llama-cpp", "vllm")
MERGE_VERSION = "3"  # bump when the merged-GGUF layout changes (invalidates the cache)
LLAMA_CPP_INSTALL = "pip install llama-cpp-python"
# weight types of the merged GGUF (PROMPT_RECOVERY_GGUF_TYPE); see docs/speed.md for the measurements
GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
KEEP_F32 = ("token_embd.weight", "output.weight")  # kept float32 whatever the weight type
KV_CELLS = 16384  # llama.cpp KV-cache cells over all workers and sequences (memory: docs/speed.md)
MIN_WORKER_CELLS = 1024  # ... but at least this many per worker
MAX_WORKERS = 8  # default cap on llama.cpp workers (each adds a context: KV cache + compute buffers)

# PEFT module name -> llama.cpp GGUF tensor name (Llama architecture)
_LLAMA_TENSORS = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


class Backend(Protocol):
    name: str

    def generate(self, ids: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int = 8,
                 progress: bool = False, **gen_kwargs) -> list[str]:
        """Greedy continuation of each prompt (token ids), decoded without special tokens, input order."""


def notice(msg: str) -> None:
    print(f"prompt-recovery: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- transformers (reference)

class TransformersBackend:
    name = "transformers"

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer

    def generate(self, ids, max_new_tokens, batch_size=8, progress=False, **gen_kwargs):
        return [outs[0] for outs in self.generate_many(ids, max_new_tokens, batch_size, progress, **gen_kwargs)]

    def generate_many(self, ids, max_new_tokens, batch_size=8, progress=False, num_return_sequences=1,
                      **gen_kwargs) -> list[list[str]]:
        """`num_return_sequences` decoded continuations per prompt (greedy unless gen_kwargs say otherwise);
        prompts are sorted by length and left-padded into batches; results come back in input order."""
        import torch
        from tqdm.auto import tqdm

        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[list[str]] = [[] for _ in ids]
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        kw = {"do_sample": False, **gen_kwargs}
        bar = tqdm(total=len(ids), unit="pair", disable=not progress, desc="recover")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(ids[i]) for i in idx)
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding
                input_ids[row, width - len(ids[i]):] = torch.tensor(ids[i])
                mask[row, width - len(ids[i]):] = 1
            with torch.inference_mode():
                gen = self.model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                          max_new_tokens=max_new_tokens, pad_token_id=pad,
                                          eos_token_id=tok.eos_token_id, num_return_sequences=num_return_sequences,
                                          **kw)
            for row, i in enumerate(idx):
                for j in range(num_return_sequences):
                    out[i].append(tok.decode(gen[row * num_return_sequences + j, width:], skip_special_tokens=True))
            bar.update(len(idx))
        bar.close()
        return out


# ---------------------------------------------------------------- llama.cpp

_OPENBLAS: dict = {}  # {"core": kernel name} once the OpenBLAS library for llama.cpp is loaded
# the AVX-512 subsets OpenBLAS's SkylakeX kernels use
_AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}


def _cpu_flags() -> set[str]:
    from prompt_recovery.hardware import cpu_flags

    return set(cpu_flags())


def openblas_coretype() -> str | None:
    """OpenBLAS kernels for llama.cpp's BLAS backend: $PROMPT_RECOVERY_OPENBLAS_CORETYPE, else
    ``SkylakeX`` (AVX-512) where the CPU has AVX-512, else None (OpenBLAS's own choice).

    OpenBLAS does not recognise every AVX-512 CPU (docs/speed.md, "OpenBLAS kernels"), so the
    choice is made from the CPU flags. It applies only to the OpenBLAS copy loaded here;
    `OPENBLAS_CORETYPE` is left as it is for numpy and everything else."""
    env = os.environ.get("PROMPT_RECOVERY_OPENBLAS_CORETYPE")
    if env:
        return env
    return "SkylakeX" if _AVX512 <= _cpu_flags() else None


def _load_openblas() -> None:
    """Load scipy-openblas32 (the BLAS of llama.cpp's OpenBLAS build, see scripts/setup.sh) before
    llama.cpp, with the kernels of `openblas_coretype`; a no-op where it is not installed."""
    if _OPENBLAS or importlib.util.find_spec("scipy_openblas32") is None:
        return
    import ctypes

    core, old = openblas_coretype(), os.environ.get("OPENBLAS_CORETYPE")
    if core:  # read once, when the library initialises (importing scipy_openblas32 may already load it)
        os.environ["OPENBLAS_CORETYPE"] = core
    try:
        import scipy_openblas32

        path = Path(scipy_openblas32.get_lib_dir()) / "libscipy_openblas.so"
        lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return
    finally:
        if core:
            os.environ.pop("OPENBLAS_CORETYPE") if old is None else os.environ.__setitem__("OPENBLAS_CORETYPE", old)
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    _OPENBLAS["core"] = lib.scipy_openblas_get_corename().decode()


def llama_cpp_problem() -> str | None:
    """None when llama-cpp-python imports; else why not, in one line: "not installed", or the error of an
    installed copy that does not load (a broken or mismatched shared library, a missing dependency)."""
    _load_openblas()
    try:
        import llama_cpp  # noqa: F401
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "llama_cpp":
            return "not installed"
        return f"it does not load: {type(e).__name__}: {_first_line(e)}"
    except (ImportError, OSError, RuntimeError) as e:  # llama_cpp raises RuntimeError when its library fails to load
        return f"it does not load: {type(e).__name__}: {_first_line(e)}"
    return None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def llama_cpp_available() -> bool:
    return llama_cpp_problem() is None


def llama_cpp_has_blas() -> bool:
    """Whether the installed llama.cpp was built with its BLAS backend (scripts/setup.sh builds it so)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin:
        return False
    return any((Path(spec.origin).parent / "lib").glob("libggml-blas.*"))


def default_gguf_type() -> str:
    """f32 with llama.cpp's OpenBLAS backend (its float32 GEMM beats llama.cpp's own f16 kernels and
    keeps the reference's exact weights), else f16 (llama.cpp's fastest type that keeps the answers)."""
    return "f32" if llama_cpp_has_blas() else "f16"


def _busy_cores(window: float = 0.3) -> float:
    """Cores other processes keep busy right now: CPU time they used over `window` seconds
    (/proc/stat minus this process), else the 1-minute load average."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4], time.process_time()  # total, idle + iowait, ours

    try:
        t0, i0, c0 = sample()
        time.sleep(window)
        t1, i1, c1 = sample()
        ticks = os.sysconf("SC_CLK_TCK")
        wall = window * ticks  # ticks per core over the window
        return max(0.0, ((t1 - t0) - (i1 - i0)) - (c1 - c0) * ticks) / wall
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0


def default_threads() -> int:
    """CPU threads for llama.cpp: $PROMPT_RECOVERY_THREADS, else the usable cores not busy right now.

    llama.cpp's threads spin at barriers and a worker per core assumes the core to itself; with more
    threads than idle cores (a shared machine) generation gets several times slower, so cores that
    other processes are using (measured over 0.3 s) are left alone (at least one thread is used).
    """
    env = os.environ.get("PROMPT_RECOVERY_THREADS")
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, cores - int(_busy_cores() + 0.5)))


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
        _load_openblas()
        from llama_cpp import _internals, llama_cpp as lib
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp's load/context logs: errors only
        self.tokenizer = tokenizer
        self.gguf_file = str(gguf_file)
        self.n_threads, n_workers = plan_workers(n_threads or default_threads(), workers, llama_cpp_has_blas())
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
        blas = f", OpenBLAS {_OPENBLAS['core']}" if _OPENBLAS and llama_cpp_has_blas() else ""
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

    def generate(self, ids, max_new_tokens, batch_size=8, progress=False, **gen_kwargs):
        from tqdm.auto import tqdm

        if gen_kwargs:
            raise UserError(f"the llama-cpp backend does not support {', '.join(gen_kwargs)}; "
                            f"use --backend transformers")
        with tqdm(total=len(ids), unit="pair", disable=not progress, desc="recover") as bar:
            toks = self.generate_tokens(ids, max_new_tokens, bar)
        return [self.tokenizer.decode(t, skip_special_tokens=True) for t in toks]


# ---------------------------------------------------------------- GGUF with the adapter merged in

def _file_types():
    import gguf

    F = gguf.LlamaFileType
    return {"f32": F.ALL_F32, "f16": F.MOSTLY_F16, "bf16": F.MOSTLY_BF16, "q8_0": F.MOSTLY_Q8_0}

def _sha256_file(path: Path, h=None):
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h


def _permute(w, n_head: int):
    """llama.cpp's row order for Llama q/k projections (see convert_hf_to_gguf.py `LlamaModel.permute`)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_lora(adapter_dir: str | Path) -> tuple[dict, dict]:
    """(adapter_config, {gguf tensor name: float32 delta W (out, in), HF row order}) of a PEFT LoRA adapter."""
    import re

    import numpy as np

    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    why = []
    if cfg.get("peft_type", "LORA") != "LORA":
        why.append(f"peft_type {cfg.get('peft_type')}")
    if cfg.get("use_dora"):
        why.append("DoRA")
    if cfg.get("lora_bias"):
        why.append("lora_bias")
    if cfg.get("bias", "none") != "none":
        why.append(f"bias={cfg.get('bias')}")
    if cfg.get("modules_to_save"):
        why.append(f"modules_to_save={cfg.get('modules_to_save')}")
    if why:
        raise UserError(f"adapter {adapter_dir}: {', '.join(why)} is not supported by the llama-cpp backend; "
                        f"use --backend transformers")
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise UserError(f"adapter {adapter_dir} has no adapter_model.safetensors (needed by --backend llama-cpp)")
    from safetensors.torch import load_file

    tensors = {k: v.float().numpy() for k, v in load_file(str(weights)).items()}
    r, alpha = cfg.get("r", 8), cfg.get("lora_alpha", 8)
    pat = re.compile(r"layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_A(?:\.default)?\.weight$")
    deltas: dict[str, np.ndarray] = {}
    for key, a in tensors.items():
        if "lora_A" not in key:
            continue
        m = pat.search(key)
        if not m:
            raise UserError(f"adapter {adapter_dir}: LoRA on {key.split('.lora_A')[0]} is not supported by the "
                            f"llama-cpp backend; use --backend transformers")
        b = tensors[key.replace("lora_A", "lora_B")]
        module = m.group(2).split(".")[-1]
        rank = cfg.get("rank_pattern", {}).get(module, r)
        alph = cfg.get("alpha_pattern", {}).get(module, alpha)
        scale = alph / (rank ** 0.5 if cfg.get("use_rslora") else rank)
        deltas[f"blk.{m.group(1)}.{_LLAMA_TENSORS[m.group(2)]}.weight"] = (b @ a) * np.float32(scale)
    return cfg, deltas


def gguf_cache_dir() -> Path:
    from prompt_recovery.models import cache_root

    return cache_root() / "gguf"


def gguf_type(value: str | None = None) -> str:
    """The weight type of the merged GGUF: `value`, else $PROMPT_RECOVERY_GGUF_TYPE, else the default."""
    t = (value or os.environ.get("PROMPT_RECOVERY_GGUF_TYPE") or default_gguf_type()).strip().lower().replace("-", "_")
    if t not in GGUF_TYPES:
        raise UserError(f"unknown GGUF weight type {t!r} (PROMPT_RECOVERY_GGUF_TYPE); choose one of: "
                        f"{', '.join(GGUF_TYPES)}")
    return t


def _convert(w, qtype: str, name: str):
    """(array, raw ggml type or None) to store merged float32 weights `w` of tensor `name` as `qtype`.

    1-D tensors (norms) stay float32, as llama.cpp's converter keeps them; so do the token embedding
    and output head (`KEEP_F32`: the logits' last matmul decides greedy near-ties; docs/speed.md) and
    every tensor whose rows a block-quantised type does not divide (Q8_0: 32).
    """
    import gguf
    import numpy as np

    T = gguf.GGMLQuantizationType
    if qtype == "f32" or w.ndim < 2 or name in KEEP_F32:
        return np.ascontiguousarray(w, dtype=np.float32), None
    if qtype == "f16":
        return np.ascontiguousarray(w, dtype=np.float16), None
    raw = {"bf16": T.BF16, "q8_0": T.Q8_0}[qtype]
    block = gguf.GGML_QUANT_SIZES[raw][0]
    if w.shape[-1] % block:
        return np.ascontiguousarray(w, dtype=np.float32), None
    return gguf.quants.quantize(np.ascontiguousarray(w, dtype=np.float32), raw), raw


def merged_gguf(base: str | Path, adapter: str | Path | None, cache_dir: str | Path | None = None,
                weight_type: str | None = None) -> Path:
    """A GGUF of `base` with the LoRA `adapter` merged in; built once, cached, written atomically.

    Weights are de-quantized from `base` to float32 (the transformers reference's weights), the LoRA
    delta is added (for a Llama GGUF the delta of q/k is row-permuted the way llama.cpp's converter
    permutes those weights), and the 2-D weights are stored as `weight_type` (see `gguf_type`:
    f32, f16, bf16 or q8_0; 1-D norms stay float32).
    """
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    qtype = gguf_type(weight_type)
    base = Path(base)
    h = hashlib.sha256(f"merge-v{MERGE_VERSION}|{qtype}|{base.name}|{base.stat().st_size}|".encode())
    _sha256_file(base, h)
    if adapter:
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            if (Path(adapter) / name).is_file():
                _sha256_file(Path(adapter) / name, h)
    out_dir = Path(cache_dir) if cache_dir else gguf_cache_dir()
    target = out_dir / f"{base.stem}-{'lora' if adapter else 'base'}-{h.hexdigest()[:16]}.{qtype}.gguf"
    if target.is_file():
        return target

    reader = gguf.GGUFReader(str(base))
    arch = reader.get_field("general.architecture").contents()
    deltas: dict = {}
    if adapter:
        if arch != "llama":
            raise UserError(f"merging a LoRA adapter into a {arch!r} GGUF is not supported by the llama-cpp "
                            f"backend; use --backend transformers")
        _, deltas = read_lora(adapter)
        n_head = reader.get_field("llama.attention.head_count").contents()
        n_kv = reader.get_field("llama.attention.head_count_kv").contents()
        for name in list(deltas):
            if name.endswith("attn_q.weight"):
                deltas[name] = _permute(deltas[name], n_head)
            elif name.endswith("attn_k.weight"):
                deltas[name] = _permute(deltas[name], n_kv)
        missing = sorted(set(deltas) - {t.name for t in reader.tensors})
        if missing:
            raise UserError(f"adapter {adapter} targets tensors missing from {base.name}: {', '.join(missing[:3])}")

    t0 = time.time()
    what = (f"merging the LoRA adapter {Path(adapter).name} into {base.name}" if adapter
            else f"converting {base.name}")
    notice(f"{what}: {qtype} weights, once, cached as {target} ...")
    from prompt_recovery.schema import atomic_path

    with atomic_path(target) as tmp:
        writer = gguf.GGUFWriter(tmp, arch)
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue
            vtype = field.types[0]
            if field.name == gguf.Keys.General.FILE_TYPE:
                writer.add_key_value(field.name, int(_file_types()[qtype]), vtype)
                continue
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
        for t in reader.tensors:
            w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
            if t.name in deltas:
                w = w + deltas[t.name]
            arr, raw = _convert(w, qtype, t.name)
            writer.add_tensor(t.name, arr, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    notice(f"{what}: done in {time.time() - t0:.1f} s ({target.stat().st_size / 1e6:.0f} MB)")
    return target


# ---------------------------------------------------------------- choosing a backend

def gguf_source(model: str) -> Path | None:
    """The GGUF file behind a --model value, or None when the model is not GGUF-backed."""
    from prompt_recovery.models import PRESETS, gguf_path

    if model in PRESETS:
        preset = PRESETS[model]
        return gguf_path(preset) if preset.kind == "gguf-package" else None
    p = Path(model).expanduser()
    return p if p.suffix == ".gguf" and p.is_file() else None


def choose(backend: str, model: str, device: str = "auto", dtype: str = "auto") -> str:
    """The backend to use: 'transformers' or 'llama-cpp' (see module docstring)."""
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend in ("transformers", "vllm"):
        return backend
    on_gpu = device not in (None, "auto", "cpu")
    if backend == "llama-cpp":
        problem = llama_cpp_problem()
        if problem == "not installed":
            raise UserError(f"the llama-cpp backend needs llama-cpp-python: {LLAMA_CPP_INSTALL} "
                            f"(or use --backend transformers)")
        if problem:
            raise UserError(f"the llama-cpp backend cannot use llama-cpp-python, {problem} "
                            f"(or use --backend transformers)")
        if on_gpu:
            raise UserError("the llama-cpp backend runs on the CPU here; use --device cpu or --backend transformers")
        if gguf_source(model) is None:
            raise UserError(f"the llama-cpp backend needs a GGUF-backed model (smollm2-135m or a .gguf file), "
                            f"not {model!r}; use --backend transformers")
        return backend
    # auto: llama.cpp only for its float32 CPU case
    if on_gpu or dtype not in (None, "auto", "float32", "fp32") or gguf_source(model) is None:
        return "transformers"
    if device in (None, "auto"):
        import torch

        if torch.cuda.is_available():
            return "transformers"
    problem = llama_cpp_problem()
    if problem == "not installed":
        notice(f"llama-cpp-python is not installed; using the slower transformers backend ({LLAMA_CPP_INSTALL})")
        return "transformers"
    if problem:
        notice(f"llama-cpp-python is installed but {problem}; using the slower transformers backend")
        return "transformers"
    return "llama-cpp"


def load_llama_cpp(model: str, adapter: str | None = "default", n_threads: int | None = None,
                   weight_type: str | None = None):
    """(Loaded without a torch model, LlamaCppBackend) for a GGUF-backed model (+ LoRA adapter merged).

    `weight_type`: the merged GGUF's weight type (see `gguf_type`; default $PROMPT_RECOVERY_GGUF_TYPE
    or `default_gguf_type()`)."""
    from prompt_recovery import models

    base = gguf_source(model)
    if base is None:
        raise UserError(f"{model!r} is not GGUF-backed; the llama-cpp backend needs smollm2-135m or a .gguf file")
    adapter_path = models.resolve_adapter(model, adapter)
    if adapter_path and not Path(adapter_path).is_dir():
        raise UserError(f"the llama-cpp backend needs a local adapter directory, not {adapter_path!r}")
    tok = models.load_tokenizer(model)
    qtype = gguf_type(weight_type)
    engine = LlamaCppBackend(merged_gguf(base, adapter_path, weight_type=qtype), tok, n_threads=n_threads)
    loaded = models.Loaded(None, tok, model, str(base), adapter_path, models.read_adapter_meta(adapter_path),
                           "cpu", f"{qtype} GGUF, {engine.describe()}")
    return loaded, engine


# ---------------------------------------------------------------- vLLM (optional, GPU)

class VLLMBackend:
    """vLLM engine with the LoRA adapter applied per request (`LoRARequest`); same prompt token ids."""

    name = "vllm"

    def __init__(self, source: str, tokenizer, adapter: str | None = None, max_lora_rank: int = 64,
                 gpu_memory_utilization: float = 0.85, dtype: str = "auto"):
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.tokenizer = tokenizer
        self.llm = LLM(model=source, tokenizer=source, enable_lora=adapter is not None, max_lora_rank=max_lora_rank,
                       gpu_memory_utilization=gpu_memory_utilization, dtype=dtype)
        self.lora = LoRARequest("prompt-recovery", 1, adapter) if adapter else None

    def generate(self, ids, max_new_tokens, batch_size=8, progress=False, **gen_kwargs):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens,
                                stop_token_ids=[self.tokenizer.eos_token_id])
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(x)) for x in ids], params,
                                 lora_request=self.lora, use_tqdm=progress)
        return [self.tokenizer.decode(o.outputs[0].token_ids, skip_special_tokens=True) for o in outs]


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def load_vllm(model: str, adapter: str | None = "default", dtype: str = "auto"):
    """(Loaded without a torch model, VLLMBackend): vLLM needs CUDA and the `vllm` package."""
    import torch

    from prompt_recovery import models

    if not vllm_available():
        raise UserError("the vllm backend needs the vllm package: pip install 'prompt-recovery[vllm]'")
    if not torch.cuda.is_available():
        raise UserError("the vllm backend needs a CUDA GPU; use --backend transformers on this machine")
    source, _ = models.resolve_source(model)
    adapter_path = models.resolve_adapter(model, adapter)
    tok = models.load_tokenizer(model)
    engine = VLLMBackend(source, tok, adapter_path, dtype=dtype)
    loaded = models.Loaded(None, tok, model, source, adapter_path, models.read_adapter_meta(adapter_path), "cuda",
                           dtype)
    return loaded, engine


def _main(argv=None) -> int:
    """`python -m prompt_recovery.inference.backends --check-llama-cpp`: exit 0 when llama.cpp with its OpenBLAS
    backend is installed and loads (scripts/setup.sh uses it to skip the build)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m prompt_recovery.inference.backends")
    ap.add_argument("--check-llama-cpp", action="store_true", help="exit 0 if llama.cpp + OpenBLAS is usable")
    a = ap.parse_args(argv)
    if a.check_llama_cpp:
        ok, blas = llama_cpp_available(), llama_cpp_has_blas()
        core = _OPENBLAS.get("core", "not loaded")
        print(f"llama-cpp-python: {'importable' if ok else 'missing'}; BLAS backend: {'yes' if blas else 'no'}; "
              f"OpenBLAS kernels: {core}")
        return 0 if ok and blas and _OPENBLAS else 1
    ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
