"""torch.compile on the training path: eager vs compiled forward+backward, SmolLM2 + LoRA (fp32, target logits).

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/compile_probe.py --mode eager --data runs/data/mix_pub1k_hw.jsonl
    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/compile_probe.py --mode dynamic --data runs/data/mix_pub1k_hw.jsonl

Modes: eager; dynamic = torch.compile(dynamic=True) (one graph for every sequence length); auto =
torch.compile() (recompiles per new length until it turns dynamic). Real rows, one unpadded example per
step, loss from the target positions only (`train.target_logit_loss`, as the preset trains). Prints the
warm-up time of the first 4 examples (compilation) and tokens/s over the next 24; run the modes back to
back on the same core and compare (docs/training_speed.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from prompt_recovery.config import make_config  # noqa: E402
from prompt_recovery.prompting import get_format  # noqa: E402
from prompt_recovery.training.dataset import RecoveryDataset, load_rows  # noqa: E402
from prompt_recovery.training.train import TrainConfig, build_model, target_logit_loss  # noqa: E402

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("eager", "dynamic", "auto"), default="eager")
    ap.add_argument("--data", default="runs/data/mix_pub1k_hw.jsonl")
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = make_config(TrainConfig, dict(train_data=args.data, model="smollm2-135m", target_modules=ALL_LINEAR,
                                        max_text_tokens=224, max_length=512))
    model, tok, _ = build_model(cfg, "cpu", "float32")
    model.train()
    ds = RecoveryDataset(load_rows(cfg.train_data)[:28], tok, get_format("chat", 224, tok), cfg.max_length)
    examples = [ds[i] for i in range(len(ds))]
    if args.mode != "eager":
        model = torch.compile(model, dynamic=True if args.mode == "dynamic" else None)

    def step(ex) -> int:
        batch = {k: torch.tensor([ex[k]]) for k in ("input_ids", "labels", "attention_mask")}
        loss, _ = target_logit_loss(model, batch)
        loss.backward()
        return len(ex["input_ids"])

    t0 = time.perf_counter()
    for ex in examples[:4]:
        step(ex)
    print(f"{args.mode}: warm-up (4 examples) {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    tokens = sum(step(ex) for ex in examples[4:])
    print(f"{args.mode}: {tokens / (time.perf_counter() - t0):.1f} tokens/s over {len(examples) - 4} examples")


if __name__ == "__main__":
    main()
