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
  * ``llama-cpp`` – llama.cpp through ``llama-cpp-python`` (``pip install llama-cpp-python``),
    one prompt at a time, reusing the KV cache of the prompt prefix shared with the previous
    prompt (the chat template's system turn). Needs a GGUF-backed model: the ``smollm2-135m``
    preset or a ``.gguf`` file. The LoRA adapter is merged into the GGUF weights once and the
    merged file is cached under ``$PROMPT_RECOVERY_CACHE/gguf/`` (default
    ``~/.cache/prompt-recovery``), keyed by the content hash of base file and adapter.
  * ``auto`` (default) – ``llama-cpp`` when it is installed and the model is GGUF-backed, else
    ``transformers`` (with a one-line notice on stderr when only the engine is missing).

The merged GGUF holds float32 weights (de-quantized from the packaged file, LoRA delta added),
i.e. the same weights as the transformers reference, so the two paths differ only by kernel
rounding; see docs/speed.md for the measured speed and agreement.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Protocol, Sequence

from prompt_recovery.errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "llama-cpp")
MERGE_VERSION = "1"  # bump when the merged-GGUF layout changes (invalidates the cache)
LLAMA_CPP_INSTALL = "pip install llama-cpp-python"

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
        import torch
        from tqdm.auto import tqdm

        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[str] = [""] * len(ids)
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
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
                                          max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                                          eos_token_id=tok.eos_token_id, **gen_kwargs)
            for row, i in enumerate(idx):
                out[i] = tok.decode(gen[row, width:], skip_special_tokens=True)
            bar.update(len(idx))
        bar.close()
        return out


# ---------------------------------------------------------------- llama.cpp

def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a broken shared library (OSError)
        return False
    return True


def default_threads() -> int:
    """Threads for llama.cpp: $PROMPT_RECOVERY_THREADS, else the usable cores not already busy.

    llama.cpp's worker threads spin at barriers; with more threads than idle cores (a shared
    machine) generation gets several times slower, so cores busy per the 1-minute load average
    are left alone (at least one thread is always used).
    """
    env = os.environ.get("PROMPT_RECOVERY_THREADS")
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        busy = 0
    return max(1, min(cores, cores - busy + 1))


_OPEN: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # free llama.cpp models before interpreter teardown (Llama.__del__ then fails noisily)
    for b in list(_OPEN):
        b.close()


class LlamaCppBackend:
    """Greedy decoding with llama.cpp on a GGUF file, fed the reference tokenizer's token ids."""

    name = "llama-cpp"

    def __init__(self, gguf_file: str | Path, tokenizer, n_ctx: int = 4096, n_threads: int | None = None):
        import llama_cpp

        self.tokenizer = tokenizer
        self.gguf_file = str(gguf_file)
        threads = n_threads or default_threads()
        self.llm = llama_cpp.Llama(model_path=self.gguf_file, n_ctx=n_ctx, n_batch=512, n_threads=threads,
                                   n_threads_batch=threads, logits_all=False, verbose=False)
        self.n_threads = threads
        self.n_ctx = self.llm.n_ctx()
        self.n_vocab = self.llm.n_vocab()
        self._lib = llama_cpp
        _OPEN.add(self)

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    def _next_token(self) -> int:
        import numpy as np

        logits = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,))
        return int(logits.argmax())

    def generate_one(self, prompt: Sequence[int], max_new_tokens: int) -> list[int]:
        llm = self.llm
        prompt = list(prompt)
        if len(prompt) + max_new_tokens > self.n_ctx:
            raise UserError(f"prompt of {len(prompt)} tokens + {max_new_tokens} new tokens exceeds the llama.cpp "
                            f"context of {self.n_ctx}; use --backend transformers")
        # reuse the KV cache of the prefix shared with the previous prompt (eval() drops the rest)
        prev = llm.input_ids[:llm.n_tokens]
        k, limit = 0, min(len(prev), len(prompt) - 1)
        while k < limit and prev[k] == prompt[k]:
            k += 1
        llm.n_tokens = k
        llm.eval(prompt[k:])
        eos = self.tokenizer.eos_token_id
        out: list[int] = []
        for step in range(max_new_tokens):
            nxt = self._next_token()
            if nxt == eos:
                break
            out.append(nxt)
            if step + 1 < max_new_tokens:
                llm.eval([nxt])
        return out

    def generate(self, ids, max_new_tokens, batch_size=8, progress=False, **gen_kwargs):
        from tqdm.auto import tqdm

        if gen_kwargs:
            raise UserError(f"the llama-cpp backend does not support {', '.join(gen_kwargs)}; "
                            f"use --backend transformers")
        out = []
        for p in tqdm(ids, unit="pair", disable=not progress, desc="recover"):
            out.append(self.tokenizer.decode(self.generate_one(p, max_new_tokens), skip_special_tokens=True))
        return out


# ---------------------------------------------------------------- GGUF with the adapter merged in

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


def merged_gguf(base: str | Path, adapter: str | Path | None, cache_dir: str | Path | None = None) -> Path:
    """A float32 GGUF of `base` with the LoRA `adapter` merged in; built once, cached, written atomically.

    Weights are de-quantized from `base` (so they equal the transformers reference's weights); for a
    Llama GGUF the delta of q/k is row-permuted the way llama.cpp's converter permutes those weights.
    """
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    base = Path(base)
    h = hashlib.sha256(f"merge-v{MERGE_VERSION}|{base.name}|{base.stat().st_size}|".encode())
    _sha256_file(base, h)
    if adapter:
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            if (Path(adapter) / name).is_file():
                _sha256_file(Path(adapter) / name, h)
    out_dir = Path(cache_dir) if cache_dir else gguf_cache_dir()
    target = out_dir / f"{base.stem}-{'lora' if adapter else 'base'}-{h.hexdigest()[:16]}.f32.gguf"
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

    log.info("writing merged GGUF %s (once)", target)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue
            vtype = field.types[0]
            if field.name == gguf.Keys.General.FILE_TYPE:
                writer.add_key_value(field.name, int(gguf.LlamaFileType.ALL_F32), vtype)
                continue
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
        for t in reader.tensors:
            w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
            if t.name in deltas:
                w = w + deltas[t.name]
            writer.add_tensor(t.name, np.ascontiguousarray(w, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
    if backend == "transformers":
        return backend
    on_gpu = device not in (None, "auto", "cpu")
    if backend == "llama-cpp":
        if not llama_cpp_available():
            raise UserError(f"the llama-cpp backend needs llama-cpp-python: {LLAMA_CPP_INSTALL} "
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
    if not llama_cpp_available():
        notice(f"llama-cpp-python is not installed; using the slower transformers backend ({LLAMA_CPP_INSTALL})")
        return "transformers"
    return "llama-cpp"


def load_llama_cpp(model: str, adapter: str | None = "default", n_threads: int | None = None):
    """(Loaded without a torch model, LlamaCppBackend) for a GGUF-backed model (+ LoRA adapter merged)."""
    from prompt_recovery import models

    base = gguf_source(model)
    if base is None:
        raise UserError(f"{model!r} is not GGUF-backed; the llama-cpp backend needs smollm2-135m or a .gguf file")
    adapter_path = models.resolve_adapter(model, adapter)
    if adapter_path and not Path(adapter_path).is_dir():
        raise UserError(f"the llama-cpp backend needs a local adapter directory, not {adapter_path!r}")
    tok = models.load_tokenizer(model)
    engine = LlamaCppBackend(merged_gguf(base, adapter_path), tok, n_threads=n_threads)
    loaded = models.Loaded(None, tok, model, str(base), adapter_path, models.read_adapter_meta(adapter_path),
                           "cpu", "float32")
    return loaded, engine
