"""Training throughput and model-FLOPs utilisation (MFU) of the default LoRA preset on this machine.

    python benchmarks/train_speed.py --data ../shared/data/public_triples/train.csv --steps 20

Trains `configs/smollm2-135m-cpu.yaml` (overridable) for a fixed number of optimiser steps on
real rows and prints tokens/s (real, unpadded tokens), peak RSS and, as the last line,
`mfu X`: achieved FLOP/s / the best dense-matmul FLOP/s measured in the same run with the
fastest dtype the CPU supports (bf16 where AVX-512 BF16/AMX make it faster, else fp32).
FLOPs per token: 4*N for LoRA on a frozen base (forward 2N + input-gradient backward 2N),
N = non-embedding parameters with the LM head counted. The first step is warm-up and not timed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def matmul_peak(dtype, n=2048, seconds=2.0) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)


def non_embedding_params(model) -> int:
    emb = model.get_input_embeddings().weight
    total = sum(p.numel() for n, p in model.named_parameters()
                if p.data_ptr() != emb.data_ptr() and "lora_" not in n)  # the frozen base only
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() == emb.data_ptr():
        total += head.weight.numel()  # a tied LM head still costs a matmul per token
    return total


def main() -> None:
    from transformers import TrainerCallback

    from prompt_recovery.config import load_yaml, make_config
    from prompt_recovery.train import TrainConfig, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/public_triples/train.csv")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs/smollm2-135m-cpu.yaml"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--precision", default=None, help="override the preset's precision (fp32 or bf16)")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()

    peaks = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}
    best_dtype = max(peaks, key=peaks.get)
    print(f"dense matmul peak: fp32 {peaks['float32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bfloat16'] / 1e9:.0f} GFLOP/s")

    values = load_yaml(args.config)
    values.update(train_data=args.data, max_steps=args.steps + 1, eval_steps=None, val_fraction=0.01,
                  max_val_rows=1, output_dir=tempfile.mkdtemp(prefix="train_speed_"), logging_steps=1000,
                  max_train_rows=(args.steps + 1) * 16, resume=False, typo_rate=0.0)
    if args.precision:
        values["precision"] = args.precision
    if args.batch_size:
        values["per_device_train_batch_size"] = args.batch_size
    cfg = make_config(TrainConfig, values)

    class Timer(TrainerCallback):
        def __init__(self):
            self.t, self.tokens, self.start, self.n_params = None, 0, None, None

        def on_train_begin(self, a, state, control, model=None, **kw):
            self.n_params = non_embedding_params(model.get_base_model() if hasattr(model, "get_base_model") else model)

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == 1:
                self.start = time.perf_counter()
                self.tokens = 0

    timer = Timer()
    from prompt_recovery import train as train_mod

    orig_getitem = train_mod.RecoveryDataset.__getitem__

    def counting_getitem(self, i):
        ex = orig_getitem(self, i)
        timer.tokens += len(ex["input_ids"])
        return ex

    train_mod.RecoveryDataset.__getitem__ = counting_getitem
    res = train(cfg, callbacks=[timer])
    elapsed = time.perf_counter() - timer.start
    # tokens counted from step 2 on (the dataloader fetches one batch ahead: close enough over many steps)
    tok_s = timer.tokens / elapsed
    achieved = 4 * timer.n_params * tok_s
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"precision {cfg.precision}, batch {cfg.per_device_train_batch_size}x{cfg.gradient_accumulation_steps}, "
          f"{args.steps} timed steps, N = {timer.n_params / 1e6:.1f}M non-embedding params")
    print(f"tokens/s {tok_s:.1f}")
    print(f"achieved {achieved / 1e9:.1f} GFLOP/s (4*N per token); best matmul {peaks[best_dtype] / 1e9:.0f} GFLOP/s "
          f"({best_dtype})")
    print(f"peak RSS {rss_gb:.2f} GB; train loss {res.metrics.get('train_loss', float('nan')):.3f}")
    print(f"mfu {achieved / peaks[best_dtype]:.3f}")


if __name__ == "__main__":
    main()
