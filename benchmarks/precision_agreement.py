"""Would lower-precision arithmetic keep the answers? bf16 vs f16 llama.cpp paths on real dev rows.

    .venv/bin/python benchmarks/precision_agreement.py --data /work/shared/data/public_triples/dev.csv --rows 60

On rows of the public dev data that are NOT in `predict_speed.py`'s sample (seed 0, 100 rows), with
the shipped adapter merged into f16 and bf16 GGUFs, greedy-decodes each row three ways, one prompt
at a time: f16 (the reference here; it agrees 100/100 with transformers), bf16 everywhere, and
bf16 prefill of the prompt with the KV cache copied (`llama_state_seq_get_data`/`set_data`) into the
f16 context, which decodes. Prints the agreement of each with f16, the time per prefill, and how
many rows a "redo in f16 when the top-2 logit gap falls under t" guard would re-run to catch the
flipped rows. (Prefill times are only meaningful with a plain llama.cpp build: the OpenBLAS build
widens f16/bf16 weights to f32 for every product.)
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    import numpy as np

    from prompt_recovery import models
    from prompt_recovery.inference.gguf_merge import gguf_source, merged_gguf
    from prompt_recovery.inference.llama_cpp_engine import LlamaCppBackend
    from prompt_recovery.prompting import get_format, postprocess, prompt_ids
    from prompt_recovery.schema import read_table

    df = read_table(a.data, required=("original_text", "rewritten_text", "rewrite_prompt"))
    bench = set(df.sample(min(100, len(df)), random_state=0).index)
    df = df[~df.index.isin(bench)]
    df = df.sample(min(a.rows, len(df)), random_state=1)
    adapter = models.resolve_adapter("smollm2-135m", "default")
    meta = models.read_adapter_meta(adapter).get("prompt_format", {})
    tok = models.load_tokenizer("smollm2-135m")
    fmt = get_format(meta.get("name"), meta.get("max_text_tokens"), tok)  # as Recoverer.load does
    ids = [prompt_ids(tok, o, w, fmt) for o, w in zip(df.original_text, df.rewritten_text)]
    base = gguf_source("smollm2-135m")
    eng = {t: LlamaCppBackend(merged_gguf(base, adapter, weight_type=t), tok, n_seq=1,
                               n_threads=a.threads, workers=1) for t in ("f16", "bf16")}
    lib, eos = eng["f16"]._lib, tok.eos_token_id

    def feed(t, toks, start, last=True):
        w = eng[t].workers[0]
        b = w.batch.batch
        b.n_tokens = len(toks)
        for j, x in enumerate(toks):
            b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = x, start + j, 1, False
            b.seq_id[j][0] = 0
        b.logits[len(toks) - 1] = last
        w.ctx.decode(w.batch)
        if last:
            return np.ctypeslib.as_array(lib.llama_get_logits_ith(w.ctx.ctx, -1), shape=(eng[t].n_vocab,)).copy()

    def clear(t):
        lib.llama_memory_seq_rm(eng[t].workers[0].ctx.memory, 0, 0, -1)

    def greedy(t, logits, pos):
        out, gaps = [], []
        while True:
            top2 = np.partition(logits, -2)[-2:]
            gaps.append(float(abs(top2[1] - top2[0])))
            nxt = int(logits.argmax())
            if nxt == eos or len(out) >= 48:
                return postprocess(tok.decode(out, skip_special_tokens=True)), min(gaps)
            out.append(nxt)
            logits = feed(t, [nxt], pos)
            pos += 1

    res, pre = [], {"f16": 0.0, "bf16": 0.0}
    for p in ids:
        row = {}
        for t in ("f16", "bf16"):
            clear(t)
            t0 = time.perf_counter()
            logits = feed(t, p, 0)
            pre[t] += time.perf_counter() - t0
            row[t] = greedy(t, logits, len(p))
        clear("bf16"), clear("f16")
        feed("bf16", p[:-1], 0, last=False)
        cb, cf = eng["bf16"].workers[0].ctx.ctx, eng["f16"].workers[0].ctx.ctx
        n = lib.llama_state_seq_get_size(cb, 0)
        buf = (ctypes.c_uint8 * n)()
        got = lib.llama_state_seq_get_data(cb, buf, n, 0)
        if lib.llama_state_seq_set_data(cf, buf, got, 0) != got:
            raise SystemExit("KV-cache copy failed")
        row["mixed"] = greedy("f16", feed("f16", p[-1:], len(p) - 1), len(p))
        res.append(row)
    n = len(res)
    # (prefill times: with the OpenBLAS build, f16/bf16 weights are widened to f32 for every product)
    print(f"{n} dev rows outside the benchmark sample; prefill s/row: f16 {pre['f16'] / n:.3f}, "
          f"bf16 {pre['bf16'] / n:.3f}")
    for k, name in (("bf16", "bf16 everywhere"), ("mixed", "bf16 prefill + f16 decode")):
        bad = [r[k][0] != r["f16"][0] for r in res]
        print(f"{name}: {n - sum(bad)}/{n} agree with f16")
        gaps = np.array([r[k][1] for r in res])
        for th in (0.05, 0.1, 0.3):
            flagged = gaps < th
            print(f"  guard at top-2 gap < {th}: re-runs {int(flagged.sum())}/{n} rows, catches "
                  f"{int((flagged & np.array(bad)).sum())}/{sum(bad)} flips")
    for e in eng.values():
        e.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
