"""torch.compile on the training path: eager vs compiled forward+backward, SmolLM2 + LoRA (fp32, target logits).

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/compile_probe.py eager 0 --data runs/data/mix_pub1k_hw.jsonl
    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/compile_probe.py dyn 0 --data runs/data/mix_pub1k_hw.jsonl

argv: mode (eager | dyn = torch.compile(dynamic=True) | auto = torch.compile()), pad multiple (0 = none).
Prints the warm-up time (4 examples: compilation) and tokens/s over the next 24 examples; compare the
two modes run back to back on the same core (docs/training_speed.md).
"""
import sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
DATA = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else "runs/data/mix_pub1k_hw.jsonl"
from prompt_recovery.config import make_config
from prompt_recovery.training.train import TrainConfig, build_model, target_logit_loss
from prompt_recovery.training.dataset import RecoveryDataset, load_rows
from prompt_recovery.prompting import get_format
torch.manual_seed(0)
cfg = make_config(TrainConfig, dict(train_data=DATA, model="smollm2-135m",
      target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"], max_text_tokens=224, max_length=512))
model, tok, _ = build_model(cfg, "cpu", "float32")
model.train()
import pandas as pd
rows = pd.read_json(cfg.train_data, lines=True).to_dict("records")[:40]
ds = RecoveryDataset(rows, tok, get_format("chat", 224, tok), 512)
exs = [ds[i] for i in range(len(ds))]
pad = int(sys.argv[2]) if len(sys.argv) > 2 else 0
def batch(ex):
    ids, labels = ex["input_ids"], ex["labels"]
    if pad:
        n = -(-len(ids) // pad) * pad
        labels = labels + [-100] * (n - len(ids)); ids = ids + [tok.pad_token_id or 0] * (n - len(ids))
    t = lambda x: torch.tensor([x])
    return {"input_ids": t(ids), "labels": t(labels), "attention_mask": t([1] * len(ids))}
def step(m, ex):
    loss, _ = target_logit_loss(m, batch(ex))
    loss.backward()
    return loss.item()
mode = sys.argv[1] if len(sys.argv) > 1 else "eager"
m = model
if mode != "eager":
    m = torch.compile(model, dynamic=True if mode == "dyn" else None)
t0 = time.perf_counter(); 
for ex in exs[:4]: step(m, ex)
print(mode, "warm-up 4 examples", round(time.perf_counter() - t0, 1), "s", flush=True)
tokens = 0; t0 = time.perf_counter()
for ex in exs[4:28]:
    step(m, ex); tokens += len(ex["input_ids"])
dt = time.perf_counter() - t0
print(mode, f"pad{pad}", f"{tokens / dt:.1f} tokens/s over 24 examples", flush=True)
