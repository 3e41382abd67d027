"""The decision table of a quality run against the baseline, from what `quality_run.sh` left in runs/:

    .venv/bin/python scripts/quality_table.py f10l56e                 # against shipped, every part scored
    .venv/bin/python scripts/quality_table.py f10l56e f9l56e --parts heldout suite

Per part (scripts/quality_parts.sh): plain answers' SCS and, on the suites, family accuracy of BASELINE and NAME, with
the paired difference and its 95% CI under MiniLM and the second scorer (runs/eval/NAME_vs_BASELINE_PART_EMBEDDER,
from `quality_paired.sh`); then the same for `recover`'s reranked answers (runs/eval/NAMErr_vs_BASELINErr_...,
from `quality_judge.sh`); then family accuracy pooled over the suites scored, paired bootstrap over their rows (plain
answers runs/pred/NAME_PART.csv, reranked runs/probe/NAME_sweep/PART/w1_a0_m0.05.csv). A figure whose report is
missing prints as "-". Markdown, for docs/quality.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# the parts of scripts/quality_parts.sh that are scored
PARTS = ("heldout", "suite", "suiteb", "suitec", "suited", "suitee")
EMBEDDERS = ("minilm", "smollm2-tokens")
SETTING = "w1_a0_m0.05"  # recover's reranking (quality_judge.sh)


def _report(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _diff(rep: dict | None, metric: str) -> str:
    if not rep or not rep.get("baselines"):
        return "-"
    d = rep["baselines"][0].get("paired", {}).get(metric)
    return f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d else "-"


def _pair(rep: dict | None, metric: str) -> tuple[str, str]:
    """(baseline, model) values of a metric in a comparison report."""
    if not rep:
        return "-", "-"
    model = rep["family_accuracy"]["accuracy"] if metric == "family_accuracy" else rep["metrics"][metric]
    base = rep["baselines"][0]["metrics"].get(metric) if rep.get("baselines") else None
    if metric == "family_accuracy" and rep.get("baselines"):
        p = rep["baselines"][0].get("paired", {}).get(metric)
        base = model - p["diff"] if p else None
    return (f"{base:.3f}" if base is not None else "-"), f"{model:.3f}"


def rows(name: str, base: str, parts, runs: Path) -> list[str]:
    out = [f"| {name} against {base} | n | {base} | {name} | difference, MiniLM | difference, second scorer |",
           "|---|---|---|---|---|---|"]
    for kind, tag in (("plain", ""), ("reranked", "rr")):
        for part in parts:
            reps = {e: _report(runs / "eval" / f"{name}{tag}_vs_{base}{tag}_{part}_{e}/report.json") for e in EMBEDDERS}
            first = reps["minilm"]
            n = first["n"] if first else "-"
            metrics = ["scs"] + (["family_accuracy"] if first and first.get("family_accuracy") else [])
            for m in metrics:
                b, v = _pair(first, m)
                second = _diff(reps["smollm2-tokens"], m) if m == "scs" else ""
                out.append(f"| {part} {m.replace('_', ' ')}, {kind} | {n} | {b} | {v} | {_diff(first, m)} | {second} |")
    return out


def _correct(pred_csv: Path, truth: pd.DataFrame) -> np.ndarray | None:
    from prompt_recovery.scoring.categories import categorize
    from prompt_recovery.scoring.suite import FAMILY_CATEGORY

    if not pred_csv.is_file():
        return None
    p = pd.read_csv(pred_csv, dtype={"id": str}).set_index("id")["rewrite_prompt"].fillna("")
    return np.array([categorize(p.get(i, "")) == FAMILY_CATEGORY[f] for i, f in zip(truth["id"], truth["family"])])


def pooled(name: str, base: str, parts, runs: Path, resamples: int = 1000, seed: int = 0) -> list[str]:
    """Family accuracy over the suites scored, NAME minus BASE, with a paired bootstrap CI over the pooled rows (a
    suite: a part whose report runs/eval/NAME_PART has a family accuracy; its truth file is the report's)."""
    from prompt_recovery.scoring import suite

    truths = {}
    for part in parts:
        rep = _report(runs / "eval" / f"{name}_{part}/report.json")
        if rep and rep.get("family_accuracy"):
            truths[part] = pd.read_json(suite.resolve(rep["truth"]), lines=True, dtype={"id": str})
    out = []
    for kind in ("plain", "reranked"):
        a, b = [], []
        for part, truth in truths.items():
            where = (lambda m: runs / "pred" / f"{m}_{part}.csv") if kind == "plain" else \
                (lambda m: runs / "probe" / f"{m}_sweep" / part / f"{SETTING}.csv")
            x, y = _correct(where(name), truth), _correct(where(base), truth)
            if x is not None and y is not None:
                a.append(x), b.append(y)
        if not a:
            continue
        x, y = np.concatenate(a).astype(float), np.concatenate(b).astype(float)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(x), (resamples, len(x)))
        boot = (x[idx] - y[idx]).mean(axis=1)
        lo, hi = np.quantile(boot, [0.025, 0.975])
        out.append(f"| suites pooled, family accuracy, {kind} | {len(x)} | {y.mean():.3f} | {x.mean():.3f} | "
                   f"{x.mean() - y.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] | |")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name")
    p.add_argument("baseline", nargs="?", default="shipped")
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--runs", type=Path, default=ROOT / "runs")
    a = p.parse_args(argv)
    print("\n".join(rows(a.name, a.baseline, a.parts, a.runs) + pooled(a.name, a.baseline, a.parts, a.runs)))


if __name__ == "__main__":
    main()
