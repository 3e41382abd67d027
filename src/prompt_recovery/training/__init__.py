"""The training stage: LoRA fine-tuning, model cards, and export of merged models.

    prompt-recovery train --config configs/smollm2-135m-cpu.yaml
    prompt-recovery export --adapter runs/adapter --output-dir runs/merged

Modules: `train` (the `train` command), `card` (model cards), `export` (the `export` command).
"""
