"""A GGUF file with a LoRA adapter merged in: what the llama.cpp engine runs and `export --format gguf` writes.

    prompt-recovery recover --examples --backend llama-cpp          # merges the shipped adapter once (cached)
    prompt-recovery export --format gguf --dtype f16 --output-dir runs/gguf

`merged_gguf(base, adapter)` de-quantizes the base GGUF (the ``smollm2-135m`` preset's packaged
file, or any Llama ``.gguf``; `gguf_source` finds it for a --model value) to float32, adds the
PEFT LoRA delta (`read_lora`: the linear layers, q/k rows permuted the way llama.cpp's converter
permutes those weights, and the token embedding's delta, which a tied output layer shares) and stores
the 2-D weights as ``$PROMPT_RECOVERY_GGUF_TYPE`` (`gguf_type`: default
``f32`` with the OpenBLAS build of llama.cpp, the reference's exact weights; ``f16`` with a plain
build; ``bf16`` and ``q8_0`` are faster but change some answers); norms, the token embedding and
the output head stay float32. The result is cached under ``$PROMPT_RECOVERY_CACHE/gguf/``
(default ``~/.cache/prompt-recovery``), keyed by the content hash of base file, adapter and weight
type, and written atomically (`schema.atomic_path`). Measurements: docs/speed.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from prompt_recovery.errors import UserError, notice
from prompt_recovery.inference import cpu_probe
from prompt_recovery.models import PRESETS, cache_root, gguf_path
from prompt_recovery.schema import atomic_path

MERGE_VERSION = "3"  # bump when the merged-GGUF layout changes (invalidates the cache)
# weight types of the merged GGUF (PROMPT_RECOVERY_GGUF_TYPE); see docs/speed.md for the measurements
GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
KEEP_F32 = ("token_embd.weight", "output.weight")  # kept float32 whatever the weight type

# PEFT module name -> llama.cpp GGUF tensor name (Llama architecture)
_LLAMA_TENSORS = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_source(model: str) -> Path | None:
    """The GGUF file behind a --model value, or None when the model is not GGUF-backed."""
    if model in PRESETS:
        preset = PRESETS[model]
        return gguf_path(preset) if preset.kind == "gguf-package" else None
    p = Path(model).expanduser()
    return p if p.suffix == ".gguf" and p.is_file() else None


def default_gguf_type() -> str:
    """f32 with llama.cpp's OpenBLAS backend (its float32 GEMM beats llama.cpp's own f16 kernels and
    keeps the reference's exact weights), else f16 (llama.cpp's fastest type that keeps the answers)."""
    return "f32" if cpu_probe.llama_cpp_has_blas() else "f16"


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

    def scale(module: str) -> np.float32:
        rank = cfg.get("rank_pattern", {}).get(module, r)
        alph = cfg.get("alpha_pattern", {}).get(module, alpha)
        return np.float32(alph / (rank ** 0.5 if cfg.get("use_rslora") else rank))

    pat = re.compile(r"layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_A(?:\.default)?\.weight$")
    deltas: dict[str, np.ndarray] = {}
    for key, a in tensors.items():
        if "lora_embedding_A" in key:  # the token embedding: delta (vocab x dim) = (B A)^T
            if not re.search(r"(^|\.)embed_tokens\.lora_embedding_A(?:\.default)?$", key):
                raise UserError(f"adapter {adapter_dir}: LoRA on {key.split('.lora_embedding_A')[0]} is not "
                                f"supported by the llama-cpp backend; use --backend transformers")
            b = tensors[key.replace("lora_embedding_A", "lora_embedding_B")]
            deltas["token_embd.weight"] = np.ascontiguousarray((b @ a).T) * scale("embed_tokens")
            continue
        if "lora_A" not in key:
            continue
        b = tensors[key.replace("lora_A", "lora_B")]
        if re.search(r"(^|\.)lm_head\.lora_A(?:\.default)?\.weight$", key):
            if not cfg.get("ensure_weight_tying"):  # tied: the embedding's delta, which moves both
                deltas["output.weight"] = (b @ a) * scale("lm_head")
            continue
        m = pat.search(key)
        if not m:
            raise UserError(f"adapter {adapter_dir}: LoRA on {key.split('.lora_A')[0]} is not supported by the "
                            f"llama-cpp backend; use --backend transformers")
        deltas[f"blk.{m.group(1)}.{_LLAMA_TENSORS[m.group(2)]}.weight"] = (b @ a) * scale(m.group(2).split(".")[-1])
    return cfg, deltas


def gguf_cache_dir() -> Path:
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
