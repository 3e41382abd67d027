"""Training throughput and model-FLOPs utilisation (MFU) of the default LoRA preset on this machine.

    python benchmarks/train_speed.py --data ../shared/data/public_triples/train.csv --steps 20 [--all]

Measures, in one run, the previous default path (bf16 autocast, one padded example per
micro-batch x 4 accumulation steps, one process on all threads), the preset's settings in one
process, and the preset itself (`processes: 0`: one single-threaded process per core, launched
with torchrun as `train` launches them; with --all also the other candidates: fp32/bf16 x
padded/packed), then prints `speedup X` (new over previous tokens/s) and `mfu X` as the last two lines.
Peak RSS is the largest of this process and its worker processes (per process, not summed).

Trains `configs/smollm2-135m-cpu.yaml` (overridable) for a fixed number of optimiser steps on
real rows and prints tokens/s (real, unpadded tokens), peak RSS and, as the last line,
`mfu X`: achieved FLOP/s / the best dense-matmul FLOP/s measured in the same run with the
fastest dtype the CPU supports (bf16 where AVX-512 BF16/AMX make it faster, else fp32).
FLOPs per token: 4*N for LoRA on a frozen base (forward 2N + input-gradient backward 2N),
N = non-embedding parameters with the LM head counted. The first step is warm-up and not timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def matmul_peak(dtype, n=2048, seconds=2.0) -> float:
    from prompt_recovery.hardware import matmul_rate

    return matmul_rate(dtype, n, n, n, seconds)


def non_embedding_params(model) -> int:
    emb = model.get_input_embeddings().weight
    total = sum(p.numel() for n, p in model.named_parameters()
                if p.data_ptr() != emb.data_ptr() and "lora_" not in n)  # the frozen base only
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() == emb.data_ptr():
        total += head.weight.numel()  # a tied LM head still costs a matmul per token
    return total


# the default path before the throughput work: bf16 autocast, one example per micro-batch, padded
PREVIOUS_DEFAULT = {"precision": "bf16", "per_device_train_batch_size": 1, "gradient_accumulation_steps": 4,
                    "packing": False, "target_logits_only": False, "pad_to_multiple_of": 32, "processes": 1}
# the preset's settings in one process using every thread (what `processes` replaced)
ONE_PROCESS = {"processes": 1}
# what else --all measures (same 4 examples per optimiser update, so the same computation)
CANDIDATES = {
    "fp32, 1x4 padded, all logits": {"precision": "fp32", "per_device_train_batch_size": 1,
                                     "gradient_accumulation_steps": 4, "packing": False, "target_logits_only": False,
                                     "pad_to_multiple_of": 32},
    "fp32, 1x4 unpadded, all logits": {"precision": "fp32", "per_device_train_batch_size": 1,
                                       "gradient_accumulation_steps": 4, "packing": False, "target_logits_only": False,
                                       "pad_to_multiple_of": 0},
    "bf16, 1x4 padded, target logits": {"precision": "bf16", "per_device_train_batch_size": 1,
                                        "gradient_accumulation_steps": 4, "packing": False, "target_logits_only": True,
                                        "pad_to_multiple_of": 32},
    "bf16, 4 packed x1": {"precision": "bf16", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
                          "packing": True},
    "fp32, 4 packed x1": {"precision": "fp32", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
                          "packing": True},
    "fp32, 4x1 padded, target logits": {"precision": "fp32", "per_device_train_batch_size": 4,
                                        "gradient_accumulation_steps": 1, "target_logits_only": True},
}


def measure(values: dict, steps: int) -> dict:
    """Train `steps` + 1 optimiser steps with `values`; tokens/s (real tokens) from step 2 on, achieved FLOP/s.

    Settings that train in several processes (`processes`, training.launch) run as torchrun workers
    (`--worker`): tokens/s = all workers' tokens over the slowest worker's time."""
    from prompt_recovery.training.launch import cpu_processes

    n = cpu_processes(values.get("processes", 1), values.get("gradient_accumulation_steps", 4))
    if n > 1 and "WORLD_SIZE" not in os.environ:
        return measure_processes(values, steps, n)
    return measure_here(values, steps)


def measure_processes(values: dict, steps: int, n: int) -> dict:
    import json
    import subprocess

    import yaml

    from prompt_recovery.config import make_config
    from prompt_recovery.training.launch import torchrun
    from prompt_recovery.training.train import TrainConfig

    work = Path(tempfile.mkdtemp(prefix="train_speed_ddp_"))
    (work / "config.yaml").write_text(yaml.safe_dump(values))
    rc, _ = torchrun(n, [__file__, "--worker", str(work / "config.yaml"), "--steps", str(steps)],
                     stdout=subprocess.DEVNULL)
    if rc:
        sys.exit(f"train_speed: the {n} worker processes failed (exit status {rc})")
    ranks = [json.loads((work / f"rank{r}.json").read_text()) for r in range(n)]
    tok_s = sum(r["tokens"] for r in ranks) / max(r["elapsed"] for r in ranks)
    n_params = ranks[0]["n_params"]
    loss = sum(r["loss"] for r in ranks) / n  # each worker's mean loss over its own examples
    return {"tok_s": tok_s, "flops": 4 * n_params * tok_s, "n_params": n_params, "loss": loss,
            "cfg": make_config(TrainConfig, values), "processes": n}


def measure_here(values: dict, steps: int) -> dict:
    from transformers import TrainerCallback

    from prompt_recovery.config import make_config
    from prompt_recovery.training.dataset import RecoveryDataset
    from prompt_recovery.training.train import TrainConfig, train

    cfg = make_config(TrainConfig, values)

    class Timer(TrainerCallback):
        def __init__(self):
            self.tokens, self.start, self.n_params = 0, None, None

        def on_train_begin(self, a, state, control, model=None, **kw):
            self.n_params = non_embedding_params(model.get_base_model() if hasattr(model, "get_base_model") else model)

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == 1:
                self.start = time.perf_counter()
                self.tokens = 0

    timer = Timer()
    orig_getitem = RecoveryDataset.__getitem__

    def counting_getitem(self, i):
        ex = orig_getitem(self, i)
        timer.tokens += len(ex["input_ids"])
        return ex

    RecoveryDataset.__getitem__ = counting_getitem
    try:
        res = train(cfg, callbacks=[timer])
    finally:
        RecoveryDataset.__getitem__ = orig_getitem
    elapsed = time.perf_counter() - timer.start
    # tokens counted from step 2 on (the dataloader fetches one batch ahead: close enough over many steps)
    tok_s = timer.tokens / elapsed
    return {"tok_s": tok_s, "flops": 4 * timer.n_params * tok_s, "n_params": timer.n_params,
            "loss": res.metrics.get("train_loss", float("nan")), "cfg": cfg, "tokens": timer.tokens,
            "elapsed": elapsed, "processes": 1}


def worker(config: str, steps: int) -> None:
    """One torchrun worker of `measure_processes`: writes rank{RANK}.json beside `config`."""
    import json

    from prompt_recovery.config import load_yaml

    r = measure_here(load_yaml(config), steps)
    (Path(config).parent / f"rank{os.environ['RANK']}.json").write_text(json.dumps(
        {k: r[k] for k in ("tokens", "elapsed", "n_params", "loss")}))


def main() -> None:
    from prompt_recovery.config import load_yaml

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/public_triples/train.csv")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs/smollm2-135m-cpu.yaml"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--all", action="store_true", help="also measure the other candidates (precision x packing)")
    ap.add_argument("--only", nargs="*", default=None, help="with --all: measure only these candidates (names)")
    ap.add_argument("--worker", metavar="CONFIG", help=argparse.SUPPRESS)  # internal: one torchrun worker
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps)

    import platform

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor())
    flags = open("/proc/cpuinfo").read()
    native_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    print(f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"native bf16: {'yes' if native_bf16 else 'no'}")
    peaks = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}
    best_dtype = max(peaks, key=peaks.get)
    print(f"dense matmul peak: fp32 {peaks['float32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bfloat16'] / 1e9:.0f} GFLOP/s")

    preset = load_yaml(args.config)
    common = dict(train_data=args.data, max_steps=args.steps + 1, eval_steps=None, val_fraction=0.01,
                  max_val_rows=1, logging_steps=1000, max_train_rows=(args.steps + 1) * 16, resume=False,
                  typo_rate=0.0)
    runs = {"previous default (bf16, 1x4 padded)": {**preset, **PREVIOUS_DEFAULT}}
    if args.all:
        runs.update({k: {**preset, **v} for k, v in CANDIDATES.items() if args.only is None or k in args.only})
    runs["the preset in one process (all threads)"] = {**preset, **ONE_PROCESS}
    runs["new default (the preset)"] = dict(preset)
    results = {}
    for name, values in runs.items():
        values = {**values, **common, "output_dir": tempfile.mkdtemp(prefix="train_speed_")}
        r = results[name] = measure(values, args.steps)
        c = r["cfg"]
        print(f"{name}: {r['processes']} process(es), precision {c.precision}, "
              f"batch {c.per_device_train_batch_size}x{c.gradient_accumulation_steps}"
              f"{' packed' if c.packing else ''}{', target logits' if c.target_logits_only else ''}: tokens/s {r['tok_s']:.1f}, {r['flops'] / 1e9:.1f} GFLOP/s, "
              f"train loss {r['loss']:.3f}", flush=True)
    new, old = results["new default (the preset)"], results["previous default (bf16, 1x4 padded)"]
    rss_gb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 2**20
    print(f"N = {new['n_params'] / 1e6:.1f}M non-embedding params, {args.steps} timed steps each; peak RSS {rss_gb:.2f} GB")
    print(f"achieved {new['flops'] / 1e9:.1f} GFLOP/s (4*N per token); best matmul {peaks[best_dtype] / 1e9:.0f} GFLOP/s "
          f"({best_dtype})")
    print(f"speedup {new['tok_s'] / old['tok_s']:.2f}")
    print(f"mfu {new['flops'] / peaks[best_dtype]:.3f}")


if __name__ == "__main__":
    main()
