"""A LoRA adapter from a fully fine-tuned model: the truncated SVD of each linear layer's weight change.

    prompt-recovery extract-lora runs/exp/f2-full-pub1k-hw2-syn600-len --rank 56 --output-dir runs/f2-lora56e

A full fine-tune (`train` with `finetune: full`) is a whole model (540 MB for SmolLM2-135M in float32);
its change to each targeted linear layer, W_tuned - W_base, is replaced by its best rank-r approximation
(Eckart-Young: U_r S_r V_r^T), written as a PEFT LoRA adapter with lora_B = U_r S_r^(1/2),
lora_A = S_r^(1/2) V_r^T and alpha = r (scale 1). The token embedding's change gets the same treatment
(`--embedding`, on by default: PEFT's LoRA embedding layer, and where the model ties its output layer to
the embedding, as SmolLM2 does, `ensure_weight_tying` so that one delta moves both, as the fine-tune
did; an untied output layer is extracted as one more linear layer). For run F2 of docs/quality.md the
embedding holds 65% of the whole change and rank 64 keeps 92% of it. The adapter then goes wherever an
adapter goes: the llama.cpp fast path (`inference/gguf_merge.py` merges the embedding delta too),
`export`, the shipped-adapter slot. Norm changes are dropped; the command prints how much of the change
it keeps (share of the squared Frobenius norm of all weight changes, each tensor counted once) so that
the loss can be weighed, and the copy is measured like any model (`scripts/quality_eval.sh`). The
adapter keeps the fine-tune's `prompt_recovery.json`, training config and log, and gets a model card saying what it was extracted from.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery import models
from prompt_recovery.config import opt
from prompt_recovery.errors import UserError
from prompt_recovery.schema import atomic_path, atomic_write_text
from prompt_recovery.training.card import base_hub_id, write_model_card

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class ExtractConfig:
    tuned: str | None = opt(None, "the fully fine-tuned model directory (train with finetune: full)", positional=True)
    model: str | None = opt(None, "the base model it was fine-tuned from (default: the one its prompt_recovery.json "
                                  "names)")
    rank: int = opt(56, "LoRA rank r of the extracted adapter (56: SmolLM2-135M's 7 linear layer kinds and its "
                        "embedding in 45 MB of bfloat16, under the 50 MB limit of a shipped adapter)")
    target_modules: list[str] = opt(None, "linear layers to extract", default_factory=lambda: list(TARGETS))
    embedding: bool = opt(True, "also extract the token embedding's change at the same rank (and the output "
                                "layer's: tied to the embedding in SmolLM2, one more linear layer where untied)")
    dtype: str = opt("bfloat16", "dtype of the saved LoRA weights", choices=("float32", "bfloat16"))
    output_dir: str = opt("runs/extracted-lora", "where the adapter is written")


def low_rank(delta, rank: int):
    """(B, A) with B @ A the best rank-`rank` approximation of `delta` (out x in), and the share of
    ||delta||^2 it keeps; B is out x rank and A rank x in even where `delta` has fewer components."""
    import torch

    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    r = min(rank, s.numel())
    root = s[:r].sqrt()
    total = float((s ** 2).sum())
    kept = float((s[:r] ** 2).sum()) / total if total > 0 else 1.0
    b, a = (u[:, :r] * root).float(), (root[:, None] * vh[:r]).float()
    if r < rank:  # a matrix smaller than the rank: exact, padded with zero components to the adapter's shape
        b = torch.cat([b, b.new_zeros(b.shape[0], rank - r)], dim=1)
        a = torch.cat([a, a.new_zeros(rank - r, a.shape[1])], dim=0)
    return b, a, kept


def extract(cfg: ExtractConfig) -> tuple[Path, dict]:
    """Write the adapter; returns (its folder, {"kept": share of all weight change kept, "layers": n, ...})."""
    import torch
    from peft import LoraConfig, get_peft_model

    if not cfg.tuned or not (Path(cfg.tuned) / "config.json").is_file():
        raise UserError(f"extract-lora: {cfg.tuned!r} is not a fully fine-tuned model directory (no config.json)")
    if cfg.rank <= 0:
        raise UserError("extract-lora: --rank must be positive")
    meta = models.model_meta(cfg.tuned, None)
    base_name = cfg.model or meta.get("base_model")
    if not base_name:
        raise UserError("extract-lora: give --model (the base the model was fine-tuned from)")
    base, tok, _ = models.load_base(base_name, "cpu", "float32")
    tuned, _, _ = models.load_base(cfg.tuned, "cpu", "float32")
    tuned_sd = tuned.state_dict()
    base_sd = base.state_dict()
    if set(tuned_sd) != set(base_sd) or any(tuned_sd[k].shape != v.shape for k, v in base_sd.items()):
        raise UserError(f"extract-lora: {cfg.tuned} does not have the architecture of {base_name}")

    def change(key):
        return float(((tuned_sd[key].double() - base_sd[key].double()) ** 2).sum())

    seen: set[int] = set()  # a tied tensor (embedding = output layer) is one tensor: counted once
    total = 0.0
    for k, v in base_sd.items():
        if v.data_ptr() not in seen:
            seen.add(v.data_ptr())
            total += change(k)
    emb_name, head_name, tied = models.embedding_layers(base)
    with_embedding = cfg.embedding and change(emb_name + ".weight") > 0
    tie = with_embedding and tied
    targets = list(cfg.target_modules) + ([emb_name.rsplit(".", 1)[-1]] if with_embedding else [])
    if cfg.embedding and head_name and not tied and change(head_name + ".weight") > 0:
        targets.append(head_name.rsplit(".", 1)[-1])
    peft_model = get_peft_model(base, LoraConfig(r=cfg.rank, lora_alpha=cfg.rank, lora_dropout=0.0,
                                                 target_modules=targets, task_type="CAUSAL_LM",
                                                 ensure_weight_tying=tie))
    kept_energy, layers = 0.0, 0
    with torch.no_grad():
        for name, module in peft_model.named_modules():
            key = name.replace("base_model.model.", "", 1) + ".weight"
            if "default" in getattr(module, "lora_embedding_A", {}):  # delta (vocab x dim) = (B A)^T
                delta = tuned_sd[key] - base_sd[key]
                b, a, share = low_rank(delta.T, cfg.rank)
                module.lora_embedding_B["default"].copy_(b)
                module.lora_embedding_A["default"].copy_(a)
            elif "default" in getattr(module, "lora_A", {}):
                if tie and name.endswith("." + head_name):
                    continue  # the output layer's LoRA is the embedding's, transposed (ensure_weight_tying)
                delta = tuned_sd[key] - base_sd[key]
                b, a, share = low_rank(delta, cfg.rank)
                module.lora_B["default"].weight.copy_(b)
                module.lora_A["default"].weight.copy_(a)
            else:
                continue
            kept_energy += share * float((delta.double() ** 2).sum())
            layers += 1
    if not layers:
        raise UserError(f"extract-lora: none of {cfg.target_modules} is a linear layer of {base_name}")
    out = Path(cfg.output_dir)
    if out.exists() and any(out.iterdir()) and not (out / "adapter_config.json").is_file():
        raise UserError(f"extract-lora: {out} exists and is not an adapter folder; give another --output-dir")
    stats = {"kept": kept_energy / total if total > 0 else 1.0, "layers": layers, "rank": cfg.rank,
             "embedding": with_embedding,
             "from": str(cfg.tuned)}
    with atomic_path(out, directory=True, replace=True) as tmp:
        peft_model.save_pretrained(tmp, save_embedding_layers=False)  # the LoRA factors, not the base embedding
        if cfg.dtype == "bfloat16":  # cast the saved file: the tied output layer's factors are views
            from safetensors.torch import load_file, save_file

            weights = tmp / "adapter_model.safetensors"
            save_file({k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(weights)).items()},
                      str(weights), metadata={"format": "pt"})
            weights.chmod(0o644)
        cfg_path = tmp / "adapter_config.json"
        ac = json.loads(cfg_path.read_text())
        ac["base_model_name_or_path"] = base_hub_id(base_name) or base_name
        atomic_write_text(cfg_path, json.dumps(ac, indent=2) + "\n")
        for f in (models.ADAPTER_META, "train_config.yaml", "train_summary.json", "train_log.jsonl", "loss.png"):
            if (Path(cfg.tuned) / f).is_file():
                shutil.copy(Path(cfg.tuned) / f, tmp / f)
        atomic_write_text(tmp / "extracted.json", json.dumps(stats, indent=2) + "\n")
        (tmp / "README.md").unlink(missing_ok=True)  # PEFT's generic card: replaced by the project's where it can
        if (tmp / "train_config.yaml").is_file() and (tmp / "train_summary.json").is_file():
            import yaml

            write_model_card(tmp, yaml.safe_load((tmp / "train_config.yaml").read_text()),
                             json.loads((tmp / "train_summary.json").read_text()))
    return out, stats


def run(cfg: ExtractConfig) -> int:
    out, stats = extract(cfg)
    print(f"extract-lora: rank-{stats['rank']} adapter of {stats['layers']} layers"
          f"{' (the token embedding among them)' if stats['embedding'] else ''} written to {out}; it keeps "
          f"{100 * stats['kept']:.1f}% of the fine-tune's weight change (squared norm)")
    return 0
