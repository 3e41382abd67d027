"""Probe: a shape prior for the likelihood reranker, offline from stored judge scores.

    python scripts/probe_shape_prior.py --fit runs/data/mix_pub1k_hw2r345_syn600.jsonl \
        --set heldout runs/probe/shipped_lik96_h376.jsonl runs/probe/heldout376.jsonl \
        --set suite runs/probe/shipped_lik96_suite.jsonl suite --weights 0 0.5 1

The judge scores the first 96 tokens of a rewrite under each candidate instruction and the length prior adds the
length ratio; neither sees whether the rewrite kept its original's form. The shape prior adds discrete features of
the (original, rewrite) pair (lines added, a list, hashtags, a letter's greeting, speaker labels, a change of
grammatical person, a title-length answer, short verse lines) as naive-Bayes log p(features | category), fitted on a
training mix with the categories of `scoring.categories`. A setting scores candidate i as
L_i + log p(length | c_i) + w * log p(shape | c_i) and keeps candidate 0 unless another beats it by more than the
margin (`search.likelihood.pick`). Printed per set: category (family) accuracy of the reranked answers per weight.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys

from prompt_recovery.search.family_prior import shape_features as features


class ShapePrior:
    def __init__(self, rows, categorize, smoothing: float = 10.0):
        self.counts = collections.defaultdict(collections.Counter)   # (category, feature) -> value counts
        self.pooled = collections.defaultdict(collections.Counter)
        self.n = collections.Counter()
        for r in rows:
            c = categorize(str(r["rewrite_prompt"]))
            self.n[c] += 1
            for k, v in features(r["original_text"], r["rewritten_text"]).items():
                self.counts[c, k][v] += 1
                self.pooled[k][v] += 1
        self.smoothing, self.categorize = smoothing, categorize

    def logp(self, original: str, rewritten: str, instruction: str) -> float:
        c = self.categorize(instruction)
        total = 0.0
        for k, v in features(original, rewritten).items():
            pool = self.pooled[k]
            p0 = (pool[v] + 1) / (sum(pool.values()) + len(pool) + 1)
            total += math.log((self.counts[c, k][v] + self.smoothing * p0) / (self.n[c] + self.smoothing))
        return total


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", nargs="+", required=True)
    p.add_argument("--set", nargs=3, action="append", metavar=("NAME", "SCORES", "TRUTH"), required=True)
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--margin", type=float, default=0.05)
    p.add_argument("--out-dir")
    a = p.parse_args(argv)

    import os

    import pandas as pd

    from prompt_recovery.schema import read_table
    from prompt_recovery.scoring import suite
    from prompt_recovery.scoring.categories import categorize
    from prompt_recovery.search.length_prior import LengthPrior
    from prompt_recovery.search.likelihood import pick

    fit = [r for f in a.fit for r in read_table(f).to_dict("records")]
    shape, length = ShapePrior(fit, categorize), LengthPrior.load()
    print(f"fitted on {len(fit)} rows: " + ", ".join(f"{k} {v}" for k, v in shape.n.most_common()))
    for name, scores_path, truth_path in a.set:
        rows = [json.loads(x) for x in open(scores_path)]
        truth = pd.read_json(suite.resolve(truth_path), lines=True, dtype={"id": str}).set_index("id")
        out = []
        for w in a.weights:
            preds, ok = [], 0
            for r in rows:
                t = truth.loc[r["id"]]
                s = [x + length.logp(t.original_text, t.rewritten_text, c)
                     + w * shape.logp(t.original_text, t.rewritten_text, c)
                     for x, c in zip(r["scores"], r["candidates"])]
                preds.append(r["candidates"][pick(s, r["target_tokens"], a.margin)])
                ok += categorize(preds[-1]) == categorize(t.rewrite_prompt)
            out.append(f"w={w:g} {ok / len(rows):.3f}")
            if a.out_dir:
                os.makedirs(os.path.join(a.out_dir, name), exist_ok=True)
                pd.DataFrame({"id": [r["id"] for r in rows], "rewrite_prompt": preds}).to_csv(
                    os.path.join(a.out_dir, name, f"shape_w{w:g}.csv"), index=False)
        print(f"{name} ({len(rows)}): " + "  ".join(out))


if __name__ == "__main__":
    sys.exit(main())
