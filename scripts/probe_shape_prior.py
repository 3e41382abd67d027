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
import re
import sys

_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_SPEAKER = re.compile(r"^\s*[A-Z][\w .'\-]{0,24}:\s")
_SOCIAL = re.compile(r"(?:^|\s)[#@]\w|[\U0001F300-\U0001FAFF\u2600-\u27BF]")
_LETTER = re.compile(r"^\s*(?:dear|hi|hello|hey|subject:|to:)\b|\b(?:sincerely|best regards|kind regards|regards|"
                     r"yours truly|cheers),?\s*$", re.I | re.M)
_FIRST = re.compile(r"\b(?:i|me|my|mine|we|us|our|i'm|i've|i'd|we're)\b", re.I)
_THIRD = re.compile(r"\b(?:he|she|they|him|her|them|his|their)\b", re.I)
_SECOND = re.compile(r"\b(?:you|your|yours|you're)\b", re.I)
_PREAMBLE = re.compile(r"^\s*(?:sure|certainly|here is|here's|okay|of course)\b[^\n]*\n", re.I)


def _lines(t: str) -> list[str]:
    return [x for x in t.splitlines() if x.strip()]


def _person(t: str) -> str:
    n = {"1": len(_FIRST.findall(t)), "2": len(_SECOND.findall(t)), "3": len(_THIRD.findall(t))}
    best = max(n, key=n.get)
    return best if n[best] >= 2 else "0"


def features(original: str, rewritten: str) -> dict[str, str]:
    """Discrete features of a pair: what changed in the text's shape (the rewrite's preamble line dropped)."""
    o, r = str(original), _PREAMBLE.sub("", str(rewritten), count=1)
    lo, lr = _lines(o), _lines(r)
    added = lambda rx, k=2: str(sum(bool(rx.search(x)) for x in lr) >= k and  # noqa: E731
                                sum(bool(rx.search(x)) for x in lo) < k)
    nlo, nlr = len(lo), len(lr)
    words = [len(x.split()) for x in lr] or [0]
    return {
        "lines": "same" if abs(nlr - nlo) <= max(1, nlo // 3) else ("more" if nlr > nlo else "fewer"),
        "list": added(_BULLET),
        "dialogue": added(_SPEAKER),
        "social": str(bool(_SOCIAL.search(r)) and not _SOCIAL.search(o)),
        "letter": str(bool(_LETTER.search(r)) and not _LETTER.search(o)),
        "person": "same" if _person(o) == _person(r) else f"{_person(o)}>{_person(r)}",
        "title": str(nlr == 1 and sum(words) <= 15),
        "verse": str(nlr >= 4 and sum(words) / nlr <= 8 and added(_BULLET) == "False"),
    }


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
