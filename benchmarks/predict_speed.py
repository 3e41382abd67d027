"""Speed of the default `predict` path against naive transformers generation, on the same real rows.

    .venv/bin/python benchmarks/predict_speed.py --data /work/shared/data/public_triples/dev.csv --rows 100
    taskset -c 1 .venv/bin/python benchmarks/predict_speed.py --data ... --rows 100 --threads 1   # one core

Runs, each in its own fresh process (so that peak RSS is per path):
  (a) naive: the transformers backend, `generate` at batch size 1;
  (b) default: `Recoverer.load()` with the defaults `predict` uses (backend auto, batch size 8).
Same rows (a seeded sample), same model, adapter and max_new_tokens. Prints recoveries/s (generation
only; load time shown separately), peak RSS, the agreement rate (exact string after post-processing)
and, over the rows where the two differ, the mean sharpened cosine similarity (MiniLM, as in
`prompt_recovery.scoring.metrics`) of each path's output to the true instruction. The last line is
`speedup X` with X = recoveries/s of (b) / recoveries/s of (a). `--json FILE` also writes all numbers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def run_path(model: str, adapter: str, backend: str, batch_size: int, max_new_tokens: int,
             pairs: list[tuple[str, str]], threads: int | None = None) -> dict:
    if threads:  # the same thread count for PyTorch and llama.cpp
        import os

        import torch

        torch.set_num_threads(threads)
        os.environ["PROMPT_RECOVERY_THREADS"] = str(threads)
    from prompt_recovery.inference.recover import Recoverer

    t0 = time.perf_counter()
    r = Recoverer.load(model, adapter=adapter, backend=backend, max_new_tokens=max_new_tokens,
                       batch_size=batch_size)
    t1, c1 = time.perf_counter(), time.process_time()
    outs = r.recover_batch(pairs, batch_size, progress=True)
    t2, c2 = time.perf_counter(), time.process_time()
    return {"describe": r.describe(), "load_s": t1 - t0, "gen_s": t2 - t1, "cpu_s": c2 - c1, "outputs": outs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_child(*args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(run_path, *args).result()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="csv/jsonl/parquet with original_text, rewritten_text, rewrite_prompt")
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--adapter", default="default", help="adapter for both paths ('default' = the shipped one)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: the predict default")
    ap.add_argument("--batch-size", type=int, default=None, help="batch size of (b); default: the predict default")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both paths (torch.set_num_threads and PROMPT_RECOVERY_THREADS); default: "
                         "each engine's own default")
    ap.add_argument("--json", help="also write the numbers (and outputs) to this JSON file")
    a = ap.parse_args(argv)

    from prompt_recovery.config import ModelOptions
    from prompt_recovery.schema import read_table

    defaults = ModelOptions()
    max_new = a.max_new_tokens or defaults.max_new_tokens
    batch = a.batch_size or defaults.batch_size
    df = read_table(a.data, required=("original_text", "rewritten_text", "rewrite_prompt"))
    df = df.sample(min(a.rows, len(df)), random_state=a.seed)
    pairs = list(zip(df.original_text, df.rewritten_text))
    truths = list(df.rewrite_prompt)
    print(f"{len(pairs)} rows of {a.data} (seed {a.seed}), model {a.model}, adapter {a.adapter}, "
          f"max_new_tokens {max_new}, threads {a.threads or 'default'}", flush=True)

    res = {}
    for key, backend, bs in [("default", defaults.backend, batch), ("naive", "transformers", 1)]:
        res[key] = in_child(a.model, a.adapter, backend, bs, max_new, pairs, a.threads)
        r = res[key]
        r["per_s"] = len(pairs) / r["gen_s"]
        print(f"({'a' if key == 'naive' else 'b'}) {key:7s} {r['describe']}, batch {bs}: {r['per_s']:.3f} "
              f"recoveries/s ({r['gen_s']:.1f} s, load {r['load_s']:.1f} s), {r['cpu_s'] / len(pairs):.2f} CPU s/recovery, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB",
              flush=True)

    fast, ref = res["default"]["outputs"], res["naive"]["outputs"]
    diff = [i for i in range(len(pairs)) if fast[i] != ref[i]]
    agree = 1 - len(diff) / len(pairs)
    print(f"agreement (exact string after post-processing): {agree:.1%} ({len(pairs) - len(diff)}/{len(pairs)})")
    summary = {"rows": len(pairs), "agreement": agree, "differing_rows": len(diff)}
    if diff:
        from prompt_recovery.scoring.embedders import Embedder
        from prompt_recovery.scoring.metrics import sharpened_cosine

        emb = Embedder.load("minilm")
        t = emb.encode([truths[i] for i in diff])
        for key, outs in (("naive", ref), ("default", fast)):
            s = float(sharpened_cosine(emb.encode([outs[i] for i in diff]), t).mean())
            summary[f"differing_scs_{key}"] = s
        print(f"on the {len(diff)} differing rows, mean similarity to the truth (SCS, MiniLM): "
              f"naive {summary['differing_scs_naive']:.4f}, default {summary['differing_scs_default']:.4f}")
    speedup = res["default"]["per_s"] / res["naive"]["per_s"]
    print(f"CPU-time ratio (a)/(b): {res['naive']['cpu_s'] / res['default']['cpu_s']:.2f}")
    if a.json:
        from prompt_recovery.schema import atomic_write_text

        summary.update({k: {kk: v for kk, v in r.items()} for k, r in res.items()}, speedup=speedup,
                       truths=truths)
        atomic_write_text(a.json, json.dumps(summary, indent=1))
    print(f"speedup {speedup:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
