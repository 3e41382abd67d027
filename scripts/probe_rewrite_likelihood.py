"""Probe: rerank a model's answer against family prototype instructions by how well each explains the rewrite.

    python scripts/probe_rewrite_likelihood.py --pairs suite --pred runs/pred/f1l64_suite.csv -o runs/probe/lik_suite.jsonl
    python scripts/probe_rewrite_likelihood.py --pairs runs/data/isplit/heldout_unseen.jsonl --rows 150 \
        --pred runs/pred/f1l64_heldout.csv -o runs/probe/lik_heldout.jsonl
    python scripts/probe_rewrite_likelihood.py --sweep runs/probe/lik_suite.jsonl --pred runs/pred/f1l64_suite.csv \
        --out-dir runs/probe/sweep_suite      # predictions per margin, then `evaluate` them
    python scripts/probe_rewrite_likelihood.py --sweep runs/probe/lik_suite.jsonl --pred runs/pred/f1l64_suite.csv \
        --prior src/prompt_recovery/search/length_prior.json --prior-weights 0.5 1 2 --pairs-files suite \
        --out-dir runs/probe/sweep_suite_prior    # the same with the length prior (search.length_prior)

Scores come from `search.likelihood.LikelihoodScorer` (what `--select likelihood` uses: log p(rewrite | c, original)
under the base SmolLM2-135M-Instruct), the choice per margin from `search.likelihood.pick`: the model's own answer
is kept unless a prototype beats it by more than the margin (nats per scored token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from prompt_recovery.search.candidates import PROTOTYPES as _P

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
    scorer = LikelihoodScorer(make_rewriter("local", "smollm2-135m", dtype=args.dtype, purpose="replay"),
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
            scores, t = scorer.scores(row["original_text"], row["rewritten_text"], cands)
            if reuse:
                old = reuse[row["id"]]
                assert old["candidates"][1:] == PROTOTYPES and old["target_tokens"] == t
                cands, scores = cands + old["candidates"][1:], scores + old["scores"][1:]
            f.write(json.dumps({"id": row["id"], "candidates": cands, "scores": scores, "target_tokens": t}) + "\n")
            f.flush()


def sweep(args) -> None:
    """Predictions per margin (and length-prior weight) from the score files (no model), for `evaluate`."""
    import pandas as pd

    from prompt_recovery.search.length_prior import LengthPrior
    from prompt_recovery.search.likelihood import pick, with_prior

    rows = [json.loads(line) for path in args.sweep for line in open(path)]
    prior, texts = None, {}
    if args.prior:
        prior = LengthPrior.load(args.prior)
        for path in args.pairs_files or []:
            d = read_pairs(path, None)
            texts.update(zip(d["id"], zip(d["original_text"], d["rewritten_text"])))
        missing = [r["id"] for r in rows if r["id"] not in texts]
        if missing:
            sys.exit(f"--prior needs the texts of every scored row (--pairs-files); {len(missing)} missing")
    os.makedirs(args.out_dir, exist_ok=True)
    for w in (args.prior_weights if prior else [0.0]):
        for m in args.margins:
            out = []
            for r in rows:
                s = with_prior(r["scores"], *texts.get(r["id"], ("", "")), r["candidates"], prior, w)
                out.append({"id": r["id"], "rewrite_prompt": r["candidates"][pick(s, r["target_tokens"], m)]})
            path = os.path.join(args.out_dir, f"m{m:g}.csv" if not prior else f"w{w:g}_m{m:g}.csv")
            pd.DataFrame(out).to_csv(path, index=False)
            print(path, sum(o["rewrite_prompt"] != r["candidates"][0] for o, r in zip(out, rows)), "changed of",
                  len(rows))


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
    p.add_argument("--prior", help="sweep: add a length prior (search.length_prior JSON) to the scores")
    p.add_argument("--prior-weights", type=float, nargs="+", default=[1.0])
    p.add_argument("--pairs-files", nargs="+", help="sweep with --prior: the pair files of the scored rows")
    p.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.2])
    a = p.parse_args(argv)
    sweep(a) if a.sweep else score(a)


if __name__ == "__main__":
    sys.exit(main())
