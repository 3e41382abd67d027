"""Splits (by original, by instruction cluster, by source) and the dataset card written next to the data.

    prompt-recovery data split --input runs/data/train.clean.jsonl --output runs/data/splits --seed 0
    prompt-recovery data split --by instruction --input runs/data/all.clean.jsonl --output runs/data/heldout \
        --split-names train dev heldout --fractions 0.8 0.05 0.15
    prompt-recovery data split --by source --holdout-sources gemma1000.csv --split-names train heldout ...

`--by instruction` measures what matters for unseen prompts: instruction clusters (k-means on
sentence embeddings, or the ids of a `--cluster-file`) are held out whole, and originals stay
disjoint too. `data exclude` then keeps extra training data out of the held-out clusters.

Originals are compared after normalisation (case, whitespace, punctuation), so near-identical
copies of one text cannot leak across splits. The unique originals are shuffled with `seed`
and cut by cumulative fraction of ROWS, so split sizes follow `fractions` even when some
originals carry many prompts. Same input + seed -> same splits.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from prompt_recovery.data.clean import word_key
from prompt_recovery.errors import UserError
from prompt_recovery.schema import atomic_write_text
from prompt_recovery.scoring.embedders import Embedder


def split_by_original(df, fractions: Sequence[float] = (0.9, 0.05, 0.05),
                      names: Sequence[str] = ("train", "dev", "test"), seed: int = 0) -> dict:
    """Return {name: DataFrame}; every original text lands in exactly one split."""
    fractions = [float(f) for f in fractions]
    _check_fractions(fractions, names)
    key = df["original_text"].map(word_key)
    which = key.map(_assign_groups(key, fractions, names, seed))
    return {n: df[which == n].reset_index(drop=True) for n in names}


def _table(counts) -> list[str]:
    lines = ["| value | rows |", "|---|---|"]
    lines += [f"| {str(k).replace('|', '/') or '(unknown)'} | {v} |" for k, v in counts.items()]
    return lines


def card_text(df, title: str, report: dict | None = None, splits: dict | None = None,
              extra: dict | None = None) -> str:
    n = len(df)
    lines = [f"# Dataset card: {title}", "",
             f"Created {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `prompt-recovery data`.",
             "Schema: `id, original_text, rewrite_prompt, rewritten_text` + provenance `source, rewriter, category`.",
             "One row: an LLM was given `original_text` with `rewrite_prompt` and answered `rewritten_text`.", "",
             "## Counts", "",
             f"- rows: {n}", f"- unique originals: {df['original_text'].nunique() if n else 0}",
             f"- unique prompts: {df['rewrite_prompt'].nunique() if n else 0}"]
    if n:
        lines += [f"- median lengths (chars): original {int(df['original_text'].str.len().median())}, "
                  f"prompt {int(df['rewrite_prompt'].str.len().median())}, "
                  f"rewrite {int(df['rewritten_text'].str.len().median())}"]
    if splits:
        by = ((extra or {}).get("split") or {}).get("by", "original_text")
        lines += ["", f"## Splits (disjoint by {by})", "", "| split | rows | originals | instructions |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {len(v)} | {v['original_text'].nunique()} | {v['rewrite_prompt'].nunique()} |"
                  for k, v in splits.items()]
    for col, head in (("source", "Sources"), ("rewriter", "Rewriters"), ("category", "Categories")):
        if col in df.columns and n and (df[col] != "").any():
            lines += ["", f"## {head}", ""] + _table(df[col].value_counts())
    if report:
        lines += ["", "## Cleaning", "", f"- mode: {report.get('mode', 'train')}",
                  f"- rows in: {report['rows_in']}; preambles stripped: {report.get('preambles_stripped', 0)}; "
                  f"closing chatter stripped: {report.get('postambles_stripped', 0)}",
                  "- dropped: " + (", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v) or "none"),
                  f"- rows out: {report['rows_out']}",
                  "- filters: `" + json.dumps(report.get("filters", {})) + "`"]
        if report.get("command"):
            lines += [f"- command: `{report['command']}`"]
    if extra:
        lines += ["", "## Details", "", "```json", json.dumps(extra, indent=2), "```"]
    lines += ["", "## Licence", "",
              "Rows keep the licence of their sources (see the `source` column); public competition data "
              "mostly carries no licence: use it to train and measure, do not redistribute it.", ""]
    return "\n".join(lines)


def write_card(df, path: str | Path, title: str, report: dict | None = None, splits: dict | None = None,
               extra: dict | None = None) -> Path:
    return atomic_write_text(path, card_text(df, title, report, splits, extra))


# ---------------------------------------------------------------- instruction- and source-disjoint splits

def instruction_clusters(prompts, embedder=None, cluster_file: str | Path | None = None, size: int = 8,
                         seed: int = 0) -> tuple[dict, dict]:
    """Map each distinct normalised instruction to a cluster id.

    Instructions found in `cluster_file` (a JSON object instruction -> cluster id, such as the
    3rd-place team's `pedromb_prompt_to_cluster.json`) keep that id (``file:<id>``); the rest are
    grouped by k-means on their sentence embeddings (about `size` instructions per cluster,
    ``emb:<k>``). Returns (instruction -> cluster, cluster -> centroid of its embeddings).
    """
    import numpy as np

    texts = sorted({word_key(p) for p in prompts})
    labels: dict[str, str] = {}
    if cluster_file:
        try:
            mapping = json.loads(Path(cluster_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"cluster file {cluster_file}: cannot read it as JSON ({e})") from None
        if not isinstance(mapping, dict):
            raise UserError(f"cluster file {cluster_file} must map instructions to cluster ids")
        known = {word_key(k): str(v) for k, v in mapping.items()}
        labels = {t: f"file:{known[t]}" for t in texts if t in known}
    if embedder is None:
        embedder = Embedder.load("minilm")
    emb = embedder.encode(texts) if texts else np.zeros((0, 1), dtype=np.float32)
    rest = [i for i, t in enumerate(texts) if t not in labels]
    if rest:
        from sklearn.cluster import KMeans

        k = max(1, min(len(rest), round(len(rest) / size)))
        ids = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(emb[rest]) if k > 1 else [0] * len(rest)
        for i, c in zip(rest, ids):
            labels[texts[i]] = f"emb:{int(c)}"
    centroids: dict = {}
    for c in sorted(set(labels.values())):
        v = emb[[i for i, t in enumerate(texts) if labels[t] == c]].mean(axis=0)
        centroids[c] = v / max(float(np.linalg.norm(v)), 1e-12)
    return labels, centroids


def _assign_groups(group, fractions, names, seed) -> dict:
    """Shuffle the distinct values of `group` (a Series) and cut them by cumulative share of rows."""
    sizes = group.value_counts()
    keys = sorted(sizes.index)
    random.Random(seed).shuffle(keys)
    total, bounds, acc = len(group), [], 0.0
    for f in fractions:
        acc += f
        bounds.append(acc * total)
    assign, done, k = {}, 0, 0
    for g in keys:
        while k < len(bounds) - 1 and done >= bounds[k] - 1e-9:
            k += 1
        assign[g] = names[k]
        done += int(sizes[g])
    return assign


def _drop_shared_originals(parts: dict) -> dict:
    """No original in two splits: a row whose original also occurs in a LATER split is dropped.

    Later splits are the held-out ones, so they keep their rows. Returns {split: rows dropped}.
    """
    names = list(parts)
    dropped = {}
    for i, n in enumerate(names):
        later = set()
        for m in names[i + 1:]:
            later |= set(parts[m]["original_text"].map(word_key))
        keep = ~parts[n]["original_text"].map(word_key).isin(later)
        dropped[n] = int((~keep).sum())
        parts[n] = parts[n][keep].reset_index(drop=True)
    return dropped


def split_by_instruction(df, fractions=(0.9, 0.05, 0.05), names=("train", "dev", "test"), seed: int = 0,
                         embedder=None, cluster_file=None, cluster_size: int = 8):
    """Instruction-disjoint splits: whole instruction clusters go to one split (see `instruction_clusters`).

    Rows whose original also occurs in a later split are dropped, so originals are disjoint too.
    Returns (parts, info) where info has the clusters of each split, their centroids and drop counts.
    """
    _check_fractions(fractions, names)
    labels, centroids = instruction_clusters(df["rewrite_prompt"], embedder, cluster_file, cluster_size, seed)
    cluster = df["rewrite_prompt"].map(lambda p: labels[word_key(p)])
    assign = _assign_groups(cluster, fractions, names, seed)
    which = cluster.map(assign)
    parts = {n: df[which == n].reset_index(drop=True) for n in names}
    dropped = _drop_shared_originals(parts)
    info = {"by": "instruction", "seed": seed, "fractions": list(fractions), "cluster_size": cluster_size,
            "cluster_file": str(cluster_file) if cluster_file else None, "embedder": getattr(embedder, "name", "minilm"),
            "dropped_shared_originals": dropped,
            "clusters": {n: sorted(c for c, s in assign.items() if s == n) for n in names},
            "centroids": {c: [round(float(x), 6) for x in v] for c, v in centroids.items()}}
    return parts, info


def split_by_source(df, holdout: Sequence[str], names=("train", "heldout")):
    """Every row of the sources in `holdout` (exact `source` values) goes to the second split."""
    if "source" not in df.columns:
        raise UserError("a source-disjoint split needs a `source` column")
    known = set(df["source"])
    missing = [s for s in holdout if s not in known]
    if missing:
        raise UserError(f"unknown source(s) {', '.join(missing)}; the input has: {', '.join(sorted(known))}")
    if len(names) != 2:
        raise UserError("a source-disjoint split has two parts: give two --split-names (e.g. train heldout)")
    held = df["source"].isin(set(holdout))
    parts = {names[0]: df[~held].reset_index(drop=True), names[1]: df[held].reset_index(drop=True)}
    dropped = _drop_shared_originals(parts)
    return parts, {"by": "source", "holdout_sources": list(holdout), "dropped_shared_originals": dropped}


def exclude_clusters(df, info: dict, splits: Sequence[str], embedder=None):
    """Rows of `df` whose instruction's nearest cluster centroid (from a split's info) belongs to `splits`.

    Used to keep extra training data (synthetic, generated) out of held-out instruction clusters.
    Returns (kept rows, dropped rows).
    """
    import numpy as np

    names = list(info["centroids"])
    if not names:
        return df, df.iloc[0:0]
    cent = np.asarray([info["centroids"][c] for c in names], dtype=np.float32)
    held = {c for s in splits for c in info["clusters"].get(s, [])}
    unknown = [s for s in splits if s not in info["clusters"]]
    if unknown:
        raise UserError(f"no split named {', '.join(unknown)} in the cluster info; it has: {', '.join(info['clusters'])}")
    if embedder is None:
        embedder = Embedder.load("minilm")
    texts = [word_key(p) for p in df["rewrite_prompt"]]
    near = (embedder.encode(texts) @ cent.T).argmax(axis=1) if texts else np.zeros(0, dtype=int)
    out = np.array([names[i] in held for i in near], dtype=bool)
    return df[~out].reset_index(drop=True), df[out].reset_index(drop=True)


def _check_fractions(fractions, names) -> None:
    if len(fractions) != len(names):
        raise UserError(f"{len(fractions)} fraction(s) for {len(names)} split name(s) ({', '.join(names)})")
    if any(f < 0 for f in fractions) or abs(sum(float(f) for f in fractions) - 1.0) > 1e-6:
        raise UserError(f"split fractions must be >= 0 and sum to 1; got {list(fractions)}")
