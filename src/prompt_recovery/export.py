"""Merge a LoRA adapter into its base model and save a standalone model directory.

    prompt-recovery export --adapter runs/adapter --output-dir runs/merged
    prompt-recovery recover --model runs/merged --adapter none --original ... --rewritten ...

The base is reloaded in full precision (fp32) before merging (`merge_and_unload`), then saved in
`--dtype` (default: float32) with the tokenizer and the adapter's `prompt_recovery.json`.
The output folder is replaced as a whole; it may not be (or hold) the adapter or base model, and an
existing folder is only replaced when it is a model folder (holds config.json), e.g. an earlier export.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery.config import opt
from prompt_recovery.errors import UserError


@dataclass
class ExportConfig:
    adapter: str = opt("default", "LoRA adapter directory or hub id ('default' = the shipped adapter)")
    model: str = opt("smollm2-135m", "base model the adapter was trained on")
    output_dir: str = opt("runs/merged", "where the merged model is written")
    dtype: str = opt("float32", "dtype of the saved weights: float32, bfloat16 or float16")
    push_to_hub: str | None = opt(None, "then upload the output folder (model + card) to this Hugging Face Hub "
                                  "model repo, OWNER/NAME")


def check_export_dir(output_dir: str, inputs: list[str]) -> Path:
    """Before any work: the output folder is replaced at the end, so it must not be (or hold) an input,
    and an existing folder is only replaced when it is a model folder (an earlier export), never, say, `.`."""
    from prompt_recovery.schema import check_folder_writable

    out = Path(output_dir)
    absout = Path(os.path.abspath(out))
    for src in inputs:
        s = Path(os.path.abspath(Path(src).expanduser()))
        if Path(src).expanduser().exists() and (s == absout or absout in s.parents):
            raise UserError(f"--output-dir {out} is (or holds) the input {src}; it would be deleted: choose "
                            "another folder")
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--output-dir {out} is a file, not a folder")
        if any(out.iterdir()) and not (out / "config.json").is_file():
            raise UserError(f"--output-dir {out} exists and is not a model folder (no config.json); it would be "
                            "replaced: choose a new folder or remove it first")
    check_folder_writable(out.parent, f"--output-dir {out}")
    return out


def export(cfg: ExportConfig) -> Path:
    import torch

    from prompt_recovery import models

    adapter = models.resolve_adapter(cfg.model, cfg.adapter)
    if adapter is None:
        raise UserError(f"no adapter to merge for {cfg.model}; pass --adapter DIR")
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.dtype)
    if dt is None:
        raise UserError(f"unknown dtype {cfg.dtype!r}; use float32, bfloat16 or float16")
    out = check_export_dir(cfg.output_dir, [adapter, cfg.model])
    base, tok, _ = models.load_base(cfg.model, "cpu", "float32")
    merged = models.attach_adapter(base, adapter).merge_and_unload()
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.to(dt).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    meta = Path(adapter) / models.ADAPTER_META
    if meta.is_file():
        shutil.copy(meta, tmp / models.ADAPTER_META)
    from prompt_recovery.card import render_merged_card
    from prompt_recovery.schema import atomic_write_text

    atomic_write_text(tmp / "README.md", render_merged_card(out, cfg.model, adapter, cfg.dtype, cfg.push_to_hub))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def run(cfg: ExportConfig) -> int:
    if cfg.push_to_hub:
        from prompt_recovery.hub import check_repo_id

        check_repo_id(cfg.push_to_hub)  # before the merge
    out = export(cfg)
    print(f"merged model written to {out}")
    if cfg.push_to_hub:
        from prompt_recovery.hub import push_folder

        print(f"uploaded: {push_folder(out, cfg.push_to_hub)}")
    return 0
