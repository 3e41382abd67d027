"""Probe: rerank a model's answer against family prototype instructions by how well each explains the rewrite.

    python scripts/probe_rewrite_likelihood.py --pairs suite --pred runs/pred/f1l64_suite.csv -o runs/probe/lik_suite.jsonl
    python scripts/probe_rewrite_likelihood.py --pairs runs/data/isplit/heldout_unseen.jsonl --rows 150 \
        --pred runs/pred/f1l64_heldout.csv -o runs/probe/lik_heldout.jsonl
    python scripts/probe_rewrite_likelihood.py --pairs suite --pred runs/pred/shipped_suite.csv \
        --per-token -o runs/probe/lik96t_suite.jsonl          # one pass for every budget up to 96 tokens, then
    python scripts/probe_rewrite_likelihood.py --truncate 48 runs/probe/lik96t_suite.jsonl -o runs/probe/lik48_suite.jsonl

Scores come from `search.likelihood.LikelihoodScorer` (what `--select likelihood` uses: log p(rewrite | c, original)
under the `--judge` model, the base SmolLM2-135M-Instruct by default). The choices per margin (and length-prior weight), with paired CIs and the
prediction CSVs for `evaluate`, come from `scripts/probe_rerank_sweep.py` on these score files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from prompt_recovery.search.candidates import PROTOTYPES as _P
from prompt_recovery.search.likelihood import REWRITE_TOKENS

PROTOTYPES = list(_P)  # one generic instruction per family: the candidates of --prototypes


def read_pairs(path: str, rows: int | None):
    import pandas as pd

    from prompt_recovery.scoring import suite

    d = pd.read_json(suite.resolve(path), lines=True, dtype={"id": str})
    if rows:
        d = d.sample(min(rows, len(d)), random_state=0).sort_index()
    return d


def score(args) -> None:
    """One JSON line per row: the candidates (the model's answer, then PROTOTYPES), their scores, the scored tokens."""
    import pandas as pd
    import torch
    from tqdm import tqdm

    from prompt_recovery.data.rewriters import make_rewriter
    from prompt_recovery.search.likelihood import LikelihoodScorer

    torch.set_num_threads(args.threads)
    d = read_pairs(args.pairs, args.rows)
    k, n = map(int, args.shard.split("/"))
    d = d.iloc[k::n]
    pred = pd.read_csv(args.pred, dtype={"id": str}).set_index("id")["rewrite_prompt"]
    scorer = LikelihoodScorer(make_rewriter("local", args.judge, dtype=args.dtype, purpose="replay"),
                              args.original_tokens, args.rewrite_tokens)
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
            cands = [str(pred[row["id"]])] + ([] if reuse else PROTOTYPES)
            logp = scorer.token_logps(row["original_text"], row["rewritten_text"], cands)
            scores, t = [float(x) for x in logp.sum(-1)], logp.shape[1]
            extra = {}
            if args.per_token:  # every budget up to --rewrite-tokens can be cut from these (--truncate)
                extra = {"token_logps": [[round(float(x), 5) for x in c] for c in logp],
                         "rewrite_len": len(scorer._ids(row["rewritten_text"]))}
            if reuse:
                old = reuse[row["id"]]
                assert old["candidates"][1:] == PROTOTYPES and old["target_tokens"] == t
                cands, scores = cands + old["candidates"][1:], scores + old["scores"][1:]
            f.write(json.dumps({"id": row["id"], "candidates": cands, "scores": scores, "target_tokens": t, **extra})
                    + "\n")
            f.flush()


def truncate(args) -> None:
    """A score file for a smaller budget of rewrite tokens, cut from `--per-token` score files (no model): the first
    N tokens of a rewrite are scored the same under any budget (causal model), plus the end token if it fits in N."""
    n, paths = int(args.truncate[0]), args.truncate[1:]
    with open(args.output, "w") as f:
        for r in (json.loads(line) for path in paths for line in open(path)):
            k = r["rewrite_len"] + 1 if r["rewrite_len"] <= n else n
            if k > r["target_tokens"]:
                sys.exit(f"{r['id']}: {r['target_tokens']} tokens scored, {k} needed for a budget of {n}")
            scores = [sum(c[:k]) for c in r["token_logps"]]
            f.write(json.dumps({"id": r["id"], "candidates": r["candidates"], "scores": scores, "target_tokens": k})
                    + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs")
    p.add_argument("--pred", help="the recovery model's answers (candidate 0) to score")
    p.add_argument("-o", "--output")
    p.add_argument("--rows", type=int)
    p.add_argument("--original-tokens", type=int, default=96)
    p.add_argument("--rewrite-tokens", type=int, default=REWRITE_TOKENS)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default="0/1", help="K/N: score every N-th row from row K (parallel processes)")
    p.add_argument("--judge", default="smollm2-135m", help="the rewriter model preset that scores (no adapter)")
    p.add_argument("--per-token", action="store_true", help="also write each token's log-probability")
    p.add_argument("--truncate", nargs="+", metavar=("N", "SCORES"), help="-o: the scores of a budget of N tokens")
    p.add_argument("--reuse", nargs="+", help="score files of another model's run: reuse their prototype scores")
    a = p.parse_args(argv)
    truncate(a) if a.truncate else score(a)


if __name__ == "__main__":
    sys.exit(main())
