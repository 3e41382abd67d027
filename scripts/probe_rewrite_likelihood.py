"""Probe: rerank a model's answer against family prototype instructions by how well each explains the rewrite.

    python scripts/probe_rewrite_likelihood.py --pairs suite --pred runs/pred/f1l64_suite.csv -o runs/probe/lik_suite.jsonl
    python scripts/probe_rewrite_likelihood.py --pairs runs/data/isplit/heldout_unseen.jsonl --rows 150 \
        --pred runs/pred/f1l64_heldout.csv -o runs/probe/lik_heldout.jsonl
    python scripts/probe_rewrite_likelihood.py --sweep runs/probe/lik_suite.jsonl --pred runs/pred/f1l64_suite.csv \
        --truth suite --out-dir runs/probe/sweep_suite      # predictions per margin, then `evaluate` them

Score of a candidate instruction c for a pair (original o, rewrite r): log p(r | c, o) under the base rewriter
(SmolLM2-135M-Instruct, no adapter, its chat template, the request layout of `generate`: "{c}\\n\\n{o}"), summed
over the first --rewrite-tokens tokens of r (plus the end-of-turn token when r fits: the length signal). For a
fixed pair every candidate scores the same tokens, so the argmax is the candidate under which the rewriter finds the
observed rewrite most likely. The model's own answer is kept unless a prototype beats it by more than the margin.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from prompt_recovery.search.candidates import PROTOTYPES as _P  # noqa: E402

PROTOTYPES = list(_P)  # one generic instruction per family: the candidates of --prototypes


def read_pairs(path: str, rows: int | None):
    import pandas as pd

    from prompt_recovery.scoring import suite

    d = pd.read_json(suite.resolve(path), lines=True, dtype={"id": str})
    if rows:
        d = d.sample(min(rows, len(d)), random_state=0).sort_index()
    return d


def score(args) -> None:
    import pandas as pd
    import torch
    from tqdm import tqdm

    from prompt_recovery import models

    torch.set_num_threads(args.threads)
    d = read_pairs(args.pairs, args.rows)
    k, n = map(int, args.shard.split("/"))
    d = d.iloc[k::n]
    pred = pd.read_csv(args.pred, dtype={"id": str}).set_index("id")["rewrite_prompt"]
    loaded = models.load("smollm2-135m", adapter="none", device="cpu", dtype=args.dtype)
    model, tok = loaded.model, loaded.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    reuse = {}
    if args.reuse:  # prototype scores do not depend on the recovery model: score only its answer
        reuse = {r["id"]: r for path in args.reuse for r in map(json.loads, open(path))}
        d = d[d["id"].isin(reuse)]
    done = set()
    if os.path.exists(args.output):
        done = {json.loads(line)["id"] for line in open(args.output)}
    with open(args.output, "a") as f:
        for _, row in tqdm(d.iterrows(), total=len(d)):
            if row["id"] in done:
                continue
            cands = [str(pred[row["id"]])] + PROTOTYPES
            if reuse:
                cands = cands[:1]
            o_ids = tok(row["original_text"], add_special_tokens=False)["input_ids"][:args.original_tokens]
            o = tok.decode(o_ids)
            r_ids = tok(row["rewritten_text"], add_special_tokens=False)["input_ids"]
            target = r_ids[:args.rewrite_tokens] + ([end] if len(r_ids) <= args.rewrite_tokens else [])
            seqs, starts = [], []
            for c in cands:
                p = tok.apply_chat_template([{"role": "user", "content": f"{c}\n\n{o}"}], tokenize=False,
                                            add_generation_prompt=True)
                p_ids = tok(p, add_special_tokens=False)["input_ids"]
                seqs.append(p_ids + target)
                starts.append(len(p_ids))
            n = max(map(len, seqs))
            ids = torch.full((len(seqs), n), tok.pad_token_id or 0)
            mask = torch.zeros((len(seqs), n), dtype=torch.long)
            for i, s in enumerate(seqs):
                ids[i, :len(s)] = torch.tensor(s)
                mask[i, :len(s)] = 1
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
            scores = [float(logp[i, starts[i] - 1:starts[i] - 1 + len(target)].sum()) for i in range(len(seqs))]
            if reuse:
                old = reuse[row["id"]]
                assert old["candidates"][1:] == PROTOTYPES and old["target_tokens"] == len(target)
                cands, scores = cands + old["candidates"][1:], scores + old["scores"][1:]
            f.write(json.dumps({"id": row["id"], "candidates": cands, "scores": scores,
                                "target_tokens": len(target)}) + "\n")
            f.flush()


def sweep(args) -> None:
    import pandas as pd

    rows = [json.loads(line) for path in args.sweep for line in open(path)]
    os.makedirs(args.out_dir, exist_ok=True)
    for m in args.margins:
        out = []
        for r in rows:
            s = list(r["scores"])
            s[0] += m * r["target_tokens"]  # margin in nats per rewrite token
            i = max(range(len(s)), key=s.__getitem__)
            out.append({"id": r["id"], "rewrite_prompt": r["candidates"][i]})
        path = os.path.join(args.out_dir, f"m{m:g}.csv")
        pd.DataFrame(out).to_csv(path, index=False)
        print(path, sum(o["rewrite_prompt"] != r["candidates"][0] for o, r in zip(out, rows)), "changed of", len(rows))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs")
    p.add_argument("--pred", required=True)
    p.add_argument("-o", "--output")
    p.add_argument("--rows", type=int)
    p.add_argument("--original-tokens", type=int, default=96)
    p.add_argument("--rewrite-tokens", type=int, default=48)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default="0/1", help="K/N: score every N-th row from row K (parallel processes)")
    p.add_argument("--sweep", nargs="+")
    p.add_argument("--reuse", nargs="+", help="score files of another model's run: reuse their prototype scores")
    p.add_argument("--out-dir")
    p.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.2])
    p.add_argument("--truth")
    a = p.parse_args(argv)
    sweep(a) if a.sweep else score(a)


if __name__ == "__main__":
    sys.exit(main())
