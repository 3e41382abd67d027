"""Measure the search options (candidates, MBR, replay, mean-prompt suffix) against the plain prediction.

    .venv/bin/python benchmarks/search_eval.py --data runs/data/dev.clean.jsonl --rows 40 \
        --bank runs/data/train.clean.jsonl --suffix-file runs/search/mean_prompt.txt --out runs/search

Each stage (greedy, beam candidates, bank neighbours, replay) runs once on the first --rows rows
and is cached in OUT/stages.json (rerun to resume); the variants are then selections over the
cached candidates. Scores: SCS under MiniLM (the search embedder) and under smollm2-tokens (a
held-out embedder, see prompt_recovery.scoring.embedders), BLEU, category accuracy. Time per row is
the sum of the stage times a variant needs, divided by the rows (model loading excluded; the
one-time bank embedding is reported separately); gains over the default carry a paired
bootstrap 95% CI (2000 resamples of the rows). Writes OUT/search_eval.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--bank", default=None)
    ap.add_argument("--bank-k", type=int, default=2)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--replay-max-new-tokens", type=int, default=64)
    ap.add_argument("--suffix-file", default=None)
    ap.add_argument("--adapter", default="default")
    ap.add_argument("--out", default="runs/search")
    a = ap.parse_args()

    from prompt_recovery.search.candidates import PromptBank, dedupe, model_candidates
    from prompt_recovery.scoring.embedders import load_embedder
    from prompt_recovery.scoring.metrics import score
    from prompt_recovery.inference.predict import read_pairs
    from prompt_recovery.inference.recover import Recoverer
    from prompt_recovery.data.rewriters import make_rewriter
    from prompt_recovery.search.replay import Replayer
    from prompt_recovery.schema import atomic_write_text
    from prompt_recovery.search.search import mbr_choice

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "stages.json"
    st = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    key = f"{a.data}|{a.rows}|{a.adapter}"
    if st.get("key") != key:
        st = {"key": key}
    for stage, k in (("model_cands", a.candidates), ("bank_near", f"{a.bank}|{a.bank_k}"),
                     ("replay_idx", f"{a.candidates}|{a.bank}|{a.bank_k}|{a.replay_max_new_tokens}")):
        if st.get(f"key_{stage}") != str(k):  # settings changed: recompute this stage
            st.pop(stage, None)
            st[f"key_{stage}"] = str(k)

    def save():
        atomic_write_text(cache_path, json.dumps(st, indent=1) + "\n")

    df = read_pairs(a.data, a.rows)
    truths = [str(t) for t in df["rewrite_prompt"]]
    pairs = list(zip(df["original_text"].astype(str), df["rewritten_text"].astype(str)))
    rec = Recoverer.load(adapter=a.adapter, backend="transformers")
    st["model"] = rec.describe()
    minilm = load_embedder("minilm")
    print("model:", st["model"], flush=True)

    if "greedy" not in st:
        t = time.perf_counter()
        st["greedy"] = rec.recover_batch(pairs, 8, progress=True)
        st["t_greedy"] = time.perf_counter() - t
        save()
    if "model_cands" not in st:
        t = time.perf_counter()
        st["model_cands"] = model_candidates(rec, pairs, a.candidates, greedy=st["greedy"], batch_size=8)
        st["t_beam"] = time.perf_counter() - t
        save()
    if a.bank and "bank_near" not in st:
        t = time.perf_counter()
        bank = PromptBank.load(a.bank, minilm, progress=True)
        st["t_bank_load"] = time.perf_counter() - t
        t = time.perf_counter()
        st["bank_near"] = bank.nearest(pairs, a.bank_k, greedy=st["greedy"])
        st["t_bank"] = time.perf_counter() - t
        save()
    all_cands = [dedupe(c + (n if a.bank else [])) for c, n in zip(st["model_cands"], st.get("bank_near", st["model_cands"]))]
    if "replay_idx" not in st:
        rw = make_rewriter("local", "smollm2-135m", max_new_tokens=a.replay_max_new_tokens, batch_size=8)
        t = time.perf_counter()
        ch = Replayer(rw, minilm).choose(pairs, all_cands, progress=True)
        st["t_replay"] = time.perf_counter() - t
        st["replay_idx"] = [c.index for c in ch]
        st["replay_scores"] = [c.scores for c in ch]
        save()

    n = len(pairs)
    t_g, t_b, t_n, t_r = (st.get(k, 0.0) for k in ("t_greedy", "t_beam", "t_bank", "t_replay"))
    variants = {
        "default (greedy)": (st["greedy"], t_g),
        f"{a.candidates} beam candidates + MBR": ([c[mbr_choice(c, minilm)] for c in st["model_cands"]], t_g + t_b),
    }
    if a.bank:
        variants[f"{a.candidates} beam + {a.bank_k} bank + MBR"] = ([c[mbr_choice(c, minilm)] for c in all_cands],
                                                                    t_g + t_b + t_n)
        variants[f"{a.candidates} beam + {a.bank_k} bank + replay"] = (
            [c[i] for c, i in zip(all_cands, st["replay_idx"])], t_g + t_b + t_n + t_r)
        variants[f"bank top-1 only"] = ([nb[0] if nb else g for nb, g in zip(st["bank_near"], st["greedy"])], t_n)
    else:
        variants[f"{a.candidates} beam + replay"] = ([c[i] for c, i in zip(all_cands, st["replay_idx"])], t_g + t_b + t_r)
    if a.suffix_file and Path(a.suffix_file).is_file():
        suffix = " ".join(Path(a.suffix_file).read_text().split())
        for name in list(variants):
            if name.startswith("bank top-1"):
                continue
            preds, t = variants[name]
            variants[f"{name} + mean-prompt suffix"] = ([f"{p} {suffix}" for p in preds], t)
        variants["mean prompt alone (constant)"] = ([suffix] * n, 0.0)

    import numpy as np

    held = load_embedder("smollm2-tokens")
    rows, base = [], {}
    boot = np.random.default_rng(0).integers(0, n, size=(2000, n))  # paired bootstrap over rows
    for name, (preds, t) in variants.items():
        r1, r2 = score(preds, truths, minilm), score(preds, truths, held)
        s1, s2 = r1.summary, r2.summary
        row = {"variant": name, "scs_minilm": s1["scs"], "scs_heldout": s2["scs"], "bleu": s1["bleu"],
               "category_accuracy": s1["category_accuracy"], "sec_per_row": t / n}
        for tag, r in (("minilm", r1), ("heldout", r2)):
            if tag not in base:
                base[tag] = r.rows["scs"]  # the first variant is the default
            d = r.rows["scs"] - base[tag]
            m = d[boot].mean(axis=1)
            row[f"delta_{tag}_ci95"] = [float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))]
        rows.append(row)
    report = {"data": a.data, "rows": n, "model": st["model"], "heldout_embedder": held.name,
              "bank": a.bank, "bank_load_sec": st.get("t_bank_load"), "suffix_file": a.suffix_file,
              "replay_changed_rows": sum(i != 0 for i in st["replay_idx"]), "results": rows,
              "examples": [{"truth": tr, "greedy": g, "candidates": c, "replay_pick": i}
                           for tr, g, c, i in list(zip(truths, st["greedy"], all_cands, st["replay_idx"]))[:8]]}
    atomic_write_text(out / "search_eval.json", json.dumps(report, indent=2) + "\n")
    lines = [f"{n} rows of {a.data}; model {st['model']}; held-out embedder {held.name}", "",
             "| variant | SCS MiniLM | 95% CI of gain | SCS held-out | 95% CI of gain | BLEU | category acc. | s/row |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = {k: "[{:+.3f}, {:+.3f}]".format(*r[f"delta_{k}_ci95"]) for k in ("minilm", "heldout")}
        lines.append(f"| {r['variant']} | {r['scs_minilm']:.4f} | {ci['minilm']} | {r['scs_heldout']:.4f} | "
                     f"{ci['heldout']} | {r['bleu']:.2f} | {r['category_accuracy']:.3f} | {r['sec_per_row']:.2f} |")
    atomic_write_text(out / "search_eval.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
