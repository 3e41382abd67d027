"""The training stage: LoRA or full fine-tuning, model cards, LoRA extraction and export of merged models.

    prompt-recovery train --config configs/smollm2-135m-cpu.yaml
    prompt-recovery export --adapter runs/adapter --output-dir runs/merged

Modules: `train` (the `train` command), `launch` (CPU processes), `card` (model cards), `extract` (the
`extract-lora` command), `export` (the `export` command).
"""
