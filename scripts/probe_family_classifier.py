"""Probe: can the (original, rewrite) pair alone tell the instruction's category? The family prior's classifier.

    python scripts/probe_family_classifier.py --fit runs/data/mix_pub1k_hw2r345_syn600.jsonl \
        --set heldout runs/probe/heldout376.jsonl --set suite suite --pred suite runs/pred/shipped_suite.csv \
        --dump runs/probe/clf        # category probabilities per set, for probe_rerank_sweep.py --clf

Fits `search.family_prior.FamilyPrior` (logistic regression on MiniLM embeddings of the pair and its shape; labels:
the family prototypes) on the --fit tables and prints per set: the classifier's category accuracy (the unit of
family accuracy), its accuracy where it is confident (top category probability >= t), and, with --pred, the
recovery model's own category accuracy on the same rows and that of a gate (where the classifier is confident and
disagrees, the answer becomes its most probable prototype), with the gate's paired MiniLM SCS difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_rows(path: str) -> list[dict]:
    if path == "suite":
        from prompt_recovery.scoring.suite import load_suite

        return load_suite()
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit", nargs="+", help="training tables (JSONL) with the three columns")
    ap.add_argument("--prior", help="instead of --fit: a saved family prior (e.g. the shipped "
                    "src/prompt_recovery/search/family_prior.json)")
    ap.add_argument("--set", nargs=2, action="append", metavar=("NAME", "ROWS"), required=True,
                    help="an evaluation set: a name and its rows (JSONL, or 'suite')")
    ap.add_argument("--pred", nargs=2, action="append", metavar=("NAME", "CSV"), default=[],
                    help="the recovery model's answers for set NAME (CSV with id, rewrite_prompt)")
    ap.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    ap.add_argument("--dump", help="write each set's category probabilities here (DIR/NAME.jsonl: id, probs)")
    ap.add_argument("--save", help="write the fitted prior here (search.family_prior's JSON)")
    ap.add_argument("--cache", default="runs/probe/minilm_cache.pkl", help="MiniLM embeddings kept between runs")
    args = ap.parse_args(argv)

    import pickle

    import numpy as np
    import pandas as pd

    from prompt_recovery.scoring.categories import categorize
    from prompt_recovery.scoring.embedders import Embedder
    from prompt_recovery.scoring.metrics import paired_difference, sharpened_cosine
    from prompt_recovery.search.candidates import PROTOTYPES
    from prompt_recovery.search.family_prior import FamilyPrior

    enc = Embedder.load("minilm")
    cache = Path(args.cache)
    if cache.exists():
        enc._cache.update(pickle.loads(cache.read_bytes()))
    if args.prior:
        prior = FamilyPrior.load(args.prior, embedder=enc)
    elif args.fit:
        fit_rows = [r for p in args.fit for r in read_rows(p)]
        prior = FamilyPrior.fit(fit_rows, enc, c=args.c, source=", ".join(Path(p).name for p in args.fit))
        print(f"fit: {len(fit_rows)} rows, {len(prior.labels)} labels")
    else:
        ap.error("give --fit TABLES or --prior FILE")
    if args.save:
        print("saved", prior.save(args.save))
    preds = dict(args.pred)
    for name, path in args.set:
        rows = read_rows(path)
        truth = np.array([categorize(str(r["rewrite_prompt"])) for r in rows])
        probs = prior.category_probs([(str(r["original_text"]), str(r["rewritten_text"])) for r in rows])
        top = np.array([max(p, key=p.get) for p in probs])
        conf = np.array([max(p.values()) for p in probs])
        if args.dump:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            with open(Path(args.dump) / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for r, p in zip(rows, probs):
                    f.write(json.dumps({"id": str(r["id"]), "probs": p}) + "\n")
        line = f"{name} ({len(rows)}): classifier {np.mean(top == truth):.3f}"
        for t in args.thresholds:
            m = conf >= t
            acc = np.mean(top[m] == truth[m]) if m.any() else float("nan")
            line += f" | p>={t}: {m.mean():.2f} of rows, acc {acc:.3f}"
        print(line)
        if name in preds:
            by_id = pd.read_csv(preds[name], dtype={"id": str}).set_index("id")["rewrite_prompt"]
            ans = [str(by_id.get(str(r["id"]), "")) for r in rows]
            model = np.array([categorize(a) for a in ans])
            te = enc.encode([str(r["rewrite_prompt"]) for r in rows])
            base_scs = sharpened_cosine(enc.encode(ans), te)
            out = f"  model: family {np.mean(model == truth):.3f}, SCS {base_scs.mean():.4f}"
            for t in args.thresholds:
                gated = list(ans)
                for i in range(len(rows)):
                    if conf[i] >= t and top[i] != model[i]:
                        # the gate's answer: the classifier's most probable prototype in its top category
                        lp = prior.label_probs([(str(rows[i]["original_text"]), str(rows[i]["rewritten_text"]))])[0]
                        inside = [c for c in PROTOTYPES if categorize(c) == top[i] and c in lp]
                        if inside:
                            gated[i] = max(inside, key=lp.get)
                changed = sum(a != b for a, b in zip(ans, gated))
                fam = np.array([categorize(g) for g in gated]) == truth
                d = paired_difference(sharpened_cosine(enc.encode(gated), te), base_scs)
                out += (f"\n    gate {t}: {changed} changed, family {fam.mean():.3f} "
                        f"({fam.mean() - np.mean(model == truth):+.3f}), SCS {d['diff']:+.4f} "
                        f"[{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]")
            print(out)
        confusion: dict[str, int] = {}
        for a, b in zip(truth, top):
            if a != b:
                confusion[f"{a}->{b}"] = confusion.get(f"{a}->{b}", 0) + 1
        print("  misses:", dict(sorted(confusion.items(), key=lambda kv: -kv[1])[:6]))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(enc._cache))


if __name__ == "__main__":
    main()
