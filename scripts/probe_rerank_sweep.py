"""Probe: sweep the likelihood reranker's settings offline, from score files, and score every setting on each set.

    python scripts/probe_rerank_sweep.py --set suite runs/probe/lik_suite.jsonl suite \
        --set heldout runs/probe/lik_h200.jsonl runs/data/isplit/heldout_unseen.jsonl \
        --prior src/prompt_recovery/search/length_prior.json --prior-weights 0 1 2 --margins 0.08 0.1 0.12 0.15 \
        [--rec suite runs/probe/rec_suite.jsonl --rec heldout runs/probe/rec_h200.jsonl --rec-weights 0 0.5 1] \
        [--clf suite runs/probe/clf/suite.jsonl --clf-weights 0 1 2] \
        [--out-dir runs/probe/sweep]    # also each setting's predictions: sweep/<set>/w1_a0_m0.12.csv, for `evaluate`

A setting (prior weight w, recovery-model weight a, margin m) scores candidate i of a row as
    L_i + w * log p(length ratio | category of c_i) + a * log p_rec(c_i | pair)
(+ k * log p_clf(category of c_i | pair) with --clf: a family classifier's category probabilities from
`probe_family_classifier.py --dump`, floored at `search.family_prior.FLOOR` as `recover` floors them)
(L: the rewriter's log p(rewrite | c_i, original) from `probe_rewrite_likelihood.py`; the length prior of
`search.length_prior`; p_rec: the recovery model's own probability of c_i from `probe_recovery_likelihood.py`) and
keeps candidate 0 unless another beats it by more than m nats per scored rewrite token (`search.likelihood.pick`).
Printed per set and setting: answers changed, SCS under MiniLM and the second scorer as paired differences against
candidate 0 (95% bootstrap CI), category accuracy (family accuracy on the suite). Written for docs/quality.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", nargs=3, action="append", metavar=("NAME", "SCORES", "TRUTH"), required=True)
    p.add_argument("--rec", nargs=2, action="append", metavar=("NAME", "REC_SCORES"), default=[])
    p.add_argument("--clf", nargs=2, action="append", metavar=("NAME", "CLF_PROBS"), default=[])
    p.add_argument("--clf-weights", type=float, nargs="+", default=[0.0])
    p.add_argument("--prior")
    p.add_argument("--prior-weights", type=float, nargs="+", default=[0.0])
    p.add_argument("--rec-weights", type=float, nargs="+", default=[0.0])
    p.add_argument("--margins", type=float, nargs="+", default=[0.1, 0.12])
    p.add_argument("--json", help="write every result here")
    p.add_argument("--out-dir", help="write each setting's predictions (id, rewrite_prompt) here, one CSV per set")
    a = p.parse_args(argv)

    import numpy as np
    import pandas as pd

    from prompt_recovery.scoring import suite
    from prompt_recovery.scoring.categories import categorize
    from prompt_recovery.scoring.embedders import load_embedder
    from prompt_recovery.scoring.metrics import paired_difference, sharpened_cosine
    from prompt_recovery.search.family_prior import FLOOR
    from prompt_recovery.search.length_prior import LengthPrior
    from prompt_recovery.search.likelihood import pick

    prior = LengthPrior.load(a.prior) if a.prior else None
    recs = {name: {r["id"]: r for r in map(json.loads, open(path))} for name, path in a.rec}
    clfs = {name: {r["id"]: r["probs"] for r in map(json.loads, open(path))} for name, path in a.clf}
    embedders = {name: load_embedder(name) for name in ("minilm", "smollm2-tokens")}
    results = []
    for name, scores_path, truth_path in a.set:
        rows = [json.loads(line) for line in open(scores_path)]
        truth = pd.read_json(suite.resolve(truth_path), lines=True, dtype={"id": str}).set_index("id").loc[
            [r["id"] for r in rows]]
        rec = recs.get(name)
        if rec is not None:
            missing = [r["id"] for r in rows if r["id"] not in rec]
            if missing:
                sys.exit(f"{name}: {len(missing)} rows without recovery-model scores")
        texts = sorted({c for r in rows for c in r["candidates"]} | set(truth["rewrite_prompt"]))
        vec = {e: dict(zip(texts, emb.encode(texts))) for e, emb in embedders.items()}
        true_cat = [categorize(t) for t in truth["rewrite_prompt"]]

        def per_row(preds, e):
            return sharpened_cosine(np.stack([vec[e][x] for x in preds]),
                                    np.stack([vec[e][t] for t in truth["rewrite_prompt"]]))

        base = [r["candidates"][0] for r in rows]
        base_scs = {e: per_row(base, e) for e in embedders}
        base_cat = np.mean([categorize(x) == c for x, c in zip(base, true_cat)])
        print(f"== {name} ({len(rows)} rows): candidate 0 SCS MiniLM {base_scs['minilm'].mean():.3f}, tokens "
              f"{base_scs['smollm2-tokens'].mean():.3f}, category acc. {base_cat:.3f}")
        lp = {}
        if prior is not None:
            lp = {r["id"]: [prior.logp(truth.loc[r["id"], "original_text"], truth.loc[r["id"], "rewritten_text"], c)
                            for c in r["candidates"]] for r in rows}
        weights = a.rec_weights if rec is not None else [0.0]
        clf = clfs.get(name)
        lc = {}
        if clf is not None:
            lc = {r["id"]: [float(np.log(max(clf[r["id"]].get(categorize(c), 0.0), FLOOR))) for c in r["candidates"]]
                  for r in rows}
        for w, ar, k, m in itertools.product(a.prior_weights if prior else [0.0], weights,
                                             a.clf_weights if clf is not None else [0.0], a.margins):
            preds = []
            for r in rows:
                s = np.asarray(r["scores"], dtype=float)
                if w:
                    s = s + w * np.asarray(lp[r["id"]])
                if ar:
                    s = s + ar * np.asarray(rec[r["id"]]["rec_scores"])
                if k:
                    s = s + k * np.asarray(lc[r["id"]])
                preds.append(r["candidates"][pick(list(s), r["target_tokens"], m)])
            changed = sum(x != b for x, b in zip(preds, base))
            if a.out_dir:
                os.makedirs(os.path.join(a.out_dir, name), exist_ok=True)
                setting = f"w{w:g}_a{ar:g}" + (f"_k{k:g}" if k else "") + f"_m{m:g}"
                pd.DataFrame({"id": [r["id"] for r in rows], "rewrite_prompt": preds}).to_csv(
                    os.path.join(a.out_dir, name, f"{setting}.csv"), index=False)
            cat = np.mean([categorize(x) == c for x, c in zip(preds, true_cat)])
            diffs = {e: paired_difference(per_row(preds, e), base_scs[e]) for e in embedders}
            res = {"set": name, "prior_weight": w, "rec_weight": ar, "clf_weight": k, "margin": m, "changed": changed,
                   "category_accuracy": float(cat),
                   **{f"scs_{e}": float(per_row(preds, e).mean()) for e in embedders},
                   **{f"diff_{e}": d for e, d in diffs.items()}}
            results.append(res)
            fmt = lambda d: f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"  # noqa: E731
            print(f"w={w:g} a={ar:g} k={k:g} m={m:g}: changed {changed:3d}  cat {cat:.3f}  MiniLM {fmt(diffs['minilm'])}"
                  f"  tokens {fmt(diffs['smollm2-tokens'])}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
