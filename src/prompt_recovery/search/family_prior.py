"""Family prior: which kind of instruction the (original, rewrite) pair itself points to, before any candidate is read.

    python -m prompt_recovery.search.family_prior runs/data/mix_pub1k_hw2r345_syn600.jsonl   # refit the shipped one

The likelihood reranker's judge (`search.likelihood`) reads the first 96 tokens of a rewrite under each candidate
instruction; the length prior adds the change of length. Neither sees the pair as a whole: whether the rewrite kept
its original's form and changed its mood, turned prose into lines of verse, spoke from another narrator. This prior
is a small classifier of that: multinomial logistic regression on all-MiniLM-L6-v2 embeddings of the rewrite and of
rewrite minus original, their cosine, the log word-count ratio and discrete shape features (`shape_features`: lines
added or dropped, a list, speaker labels, hashtags, a letter's greeting, a change of grammatical person, a one-line
title, short verse lines). Its labels are the family prototypes (`candidates.PROTOTYPES`): each training row is
labelled with the prototype of its instruction's category (`scoring.categories`) nearest to the instruction, or with
the category itself where none is in it (improve, other); a category's probability is the sum of its labels'.
`logp(original, rewritten, instruction)` is log p(category of the instruction | pair), floored at `FLOOR`, and the
reranker adds it at a weight (`--family-prior-weight`) to the judge's and the length prior's log-likelihoods.

The shipped table (`family_prior.json` beside this file: the fitted weights, no text) is fitted on the shipped
model's training mix (no held-out instruction cluster); docs/quality.md (session 17) measures it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from prompt_recovery.errors import UserError
from prompt_recovery.scoring.categories import CATEGORIES, categorize
from prompt_recovery.search.length_prior import log_ratio

DEFAULT_PATH = Path(__file__).with_name("family_prior.json")
FLOOR = 0.01  # no category is ruled out: log 0.01 = -4.6 nats at most, times the weight
FORMAT = 1    # the feature layout below; a table written for another layout is refused

_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_SPEAKER = re.compile(r"^\s*[A-Z][\w .'\-]{0,24}:\s")
_SOCIAL = re.compile(r"(?:^|\s)[#@]\w|[\U0001F300-\U0001FAFF\u2600-\u27BF]")
_LETTER = re.compile(r"^\s*(?:dear|hi|hello|hey|subject:|to:)\b|\b(?:sincerely|best regards|kind regards|regards|"
                     r"yours truly|cheers),?\s*$", re.I | re.M)
_FIRST = re.compile(r"\b(?:i|me|my|mine|we|us|our|i'm|i've|i'd|we're)\b", re.I)
_THIRD = re.compile(r"\b(?:he|she|they|him|her|them|his|their)\b", re.I)
_SECOND = re.compile(r"\b(?:you|your|yours|you're)\b", re.I)
_PREAMBLE = re.compile(r"^\s*(?:sure|certainly|here is|here's|okay|of course)\b[^\n]*\n", re.I)
SHAPE_KEYS = ("lines=more", "lines=fewer", "list=True", "dialogue=True", "social=True", "letter=True",
              "person=same", "title=True", "verse=True")


def _lines(t: str) -> list[str]:
    return [x for x in t.splitlines() if x.strip()]


def _person(t: str) -> str:
    n = {"1": len(_FIRST.findall(t)), "2": len(_SECOND.findall(t)), "3": len(_THIRD.findall(t))}
    best = max(n, key=n.get)
    return best if n[best] >= 2 else "0"


def shape_features(original: str, rewritten: str) -> dict[str, str]:
    """Discrete features of a pair: what changed in the text's shape (the rewrite's preamble line dropped)."""
    o, r = str(original), _PREAMBLE.sub("", str(rewritten), count=1)
    lo, lr = _lines(o), _lines(r)

    def added(rx, k=2):
        return str(sum(bool(rx.search(x)) for x in lr) >= k and sum(bool(rx.search(x)) for x in lo) < k)

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


def features(originals: Sequence[str], rewrites: Sequence[str], embedder):
    """The classifier's input, one row per pair (float32 array): rewrite embedding, rewrite minus original, their
    cosine, the log word-count ratio and its square (clipped at +-3), the shape features as 0/1."""
    import numpy as np

    o = np.asarray(embedder.encode([str(x) for x in originals]), dtype=np.float32)
    w = np.asarray(embedder.encode([str(x) for x in rewrites]), dtype=np.float32)
    ratio = np.array([[log_ratio(a, b)] for a, b in zip(originals, rewrites)], dtype=np.float32)
    shape = np.array([[float(k in {f"{n}={v}" for n, v in shape_features(a, b).items()}) for k in SHAPE_KEYS]
                      for a, b in zip(originals, rewrites)], dtype=np.float32).reshape(len(ratio), len(SHAPE_KEYS))
    return np.hstack([w, w - o, (o * w).sum(1, keepdims=True), ratio, np.clip(ratio, -3, 3) ** 2, shape])


def prototype_labels(instructions: Sequence[str], embedder) -> list[str]:
    """Each instruction's label: the prototype of its category nearest to it (embedding cosine), or the category
    itself when no prototype is in it."""
    import numpy as np

    from prompt_recovery.search.candidates import PROTOTYPES

    pcat = np.array([categorize(p) for p in PROTOTYPES])
    pe = np.asarray(embedder.encode(list(PROTOTYPES)))
    ie = np.asarray(embedder.encode([str(x) for x in instructions]))
    out = []
    for text, e in zip(instructions, ie):
        c = categorize(str(text))
        idx = np.flatnonzero(pcat == c)
        out.append(PROTOTYPES[idx[np.argmax(pe[idx] @ e)]] if len(idx) else c)
    return out


@dataclass
class FamilyPrior:
    """A fitted classifier: `labels` (prototypes or categories), their weights `coef` (labels x features) and
    `intercept`, and the embedder its features come from. `embedder` (an object with ``encode``) is loaded by name
    on first use when not given."""

    labels: list[str]
    coef: list[list[float]]
    intercept: list[float]
    embedder_name: str = "minilm"
    source: str = ""
    embedder: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        import numpy as np

        self._w, self._b = np.asarray(self.coef, dtype=np.float64), np.asarray(self.intercept, dtype=np.float64)
        if self._w.ndim != 2 or self._w.shape[0] != len(self.labels) or self._b.shape != (len(self.labels),):
            raise UserError(f"family prior: {len(self.labels)} labels but weights of shape {self._w.shape} and "
                            f"intercepts of shape {self._b.shape}")
        self.label_categories = [lab if lab in CATEGORIES else categorize(lab) for lab in self.labels]
        self._cache: dict[tuple[str, str], dict[str, float]] = {}

    def _embedder(self):
        if self.embedder is None:
            from prompt_recovery.scoring.embedders import load_embedder

            self.embedder = load_embedder(self.embedder_name)
        return self.embedder

    @classmethod
    def fit(cls, rows: Iterable[Mapping], embedder, embedder_name: str = "minilm", c: float = 1.0,
            source: str = "") -> "FamilyPrior":
        """Fit on rows with ``original_text, rewrite_prompt, rewritten_text`` (scikit-learn, deterministic)."""
        from sklearn.linear_model import LogisticRegression

        rows = list(rows)
        labels = prototype_labels([r["rewrite_prompt"] for r in rows], embedder)
        if len(set(labels)) < 2:
            raise UserError(f"family prior: the rows need at least two kinds of instruction, not {set(labels)}")
        x = features([r["original_text"] for r in rows], [r["rewritten_text"] for r in rows], embedder)
        clf = LogisticRegression(C=c, max_iter=3000).fit(x, labels)
        return cls(list(clf.classes_), clf.coef_.tolist(), clf.intercept_.tolist(), embedder_name, source, embedder)

    def label_probs(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """p(label | pair) for each (original, rewritten) pair: {label: probability} over `labels`, summing to 1."""
        import numpy as np

        todo = [p for p in dict.fromkeys(map(tuple, pairs)) if p not in self._cache]
        if todo:
            z = features([p[0] for p in todo], [p[1] for p in todo], self._embedder()) @ self._w.T + self._b
            z = np.exp(z - z.max(1, keepdims=True))
            z /= z.sum(1, keepdims=True)
            for pair, row in zip(todo, z):
                self._cache[pair] = dict(zip(self.labels, map(float, row)))
        return [self._cache[tuple(p)] for p in pairs]

    def category_probs(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """p(category | pair) for each (original, rewritten) pair: {category: probability}, the sum of its labels'."""
        out = []
        for probs in self.label_probs(pairs):
            cats: dict[str, float] = {}
            for cat, label in zip(self.label_categories, self.labels):
                cats[cat] = cats.get(cat, 0.0) + probs[label]
            out.append(cats)
        return out

    def logp(self, original: str, rewritten: str, instruction: str) -> float:
        """log p(category of `instruction` | pair), floored at `FLOOR` (nats)."""
        p = self.category_probs([(original, rewritten)])[0].get(categorize(instruction), 0.0)
        return math.log(max(p, FLOOR))

    def to_json(self) -> dict:
        return {"format": FORMAT, "embedder": self.embedder_name, "source": self.source, "labels": self.labels,
                "intercept": [round(v, 5) for v in self.intercept],
                "coef": [[round(v, 5) for v in row] for row in self.coef]}

    def save(self, path: str | Path = DEFAULT_PATH) -> Path:
        from prompt_recovery.schema import atomic_write_text

        d = self.to_json()
        rows = ",\n".join(json.dumps(r) for r in d.pop("coef"))  # one line per label's weights
        return atomic_write_text(path, json.dumps(d)[:-1] + f', "coef": [\n{rows}\n]}}\n')

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH, embedder=None) -> "FamilyPrior":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"family prior {path}: cannot read it ({e})") from e
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise UserError(f"family prior {path}: written for another feature layout (format "
                            f"{d.get('format') if isinstance(d, dict) else None}, this version reads {FORMAT})")
        return cls(d["labels"], d["coef"], d["intercept"], d.get("embedder", "minilm"), d.get("source", ""), embedder)


def main(argv=None) -> None:
    import argparse

    from prompt_recovery.schema import read_table
    from prompt_recovery.scoring.embedders import load_embedder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="+", help="training triples (csv/jsonl/parquet)")
    p.add_argument("-o", "--output", default=str(DEFAULT_PATH))
    p.add_argument("--embedder", default="minilm")
    a = p.parse_args(argv)
    rows = [r for path in a.data for r in read_table(path, required=("original_text", "rewrite_prompt",
                                                                     "rewritten_text")).to_dict("records")]
    prior = FamilyPrior.fit(rows, load_embedder(a.embedder), a.embedder, source=", ".join(Path(x).name for x in a.data))
    out = prior.save(a.output)
    print(f"{out}: {len(rows)} rows, {len(prior.labels)} labels")


if __name__ == "__main__":
    main()
