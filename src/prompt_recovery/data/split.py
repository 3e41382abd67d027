"""Splits by original text (no original in two splits) and the dataset card written next to the data.

    prompt-recovery data split --input runs/data/train.clean.jsonl --output runs/data/splits --seed 0

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

from prompt_recovery.errors import UserError


def split_by_original(df, fractions: Sequence[float] = (0.9, 0.05, 0.05),
                      names: Sequence[str] = ("train", "dev", "test"), seed: int = 0) -> dict:
    """Return {name: DataFrame}; every original text lands in exactly one split."""
    from prompt_recovery.data.clean import norm

    fractions = [float(f) for f in fractions]
    if len(fractions) != len(names):
        raise UserError(f"{len(fractions)} fraction(s) for {len(names)} split name(s) ({', '.join(names)})")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise UserError(f"split fractions must be >= 0 and sum to 1; got {fractions}")
    key = df["original_text"].map(norm)
    sizes = key.value_counts()
    originals = sorted(sizes.index)
    random.Random(seed).shuffle(originals)
    bounds, acc = [], 0.0
    for f in fractions:
        acc += f
        bounds.append(acc * len(df))
    assign, done, k = {}, 0, 0
    for o in originals:
        while k < len(bounds) - 1 and done >= bounds[k] - 1e-9:
            k += 1
        assign[o] = names[k]
        done += int(sizes[o])
    which = key.map(assign)
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
        lines += ["", "## Splits (disjoint by original text)", "", "| split | rows | originals |", "|---|---|---|"]
        lines += [f"| {k} | {len(v)} | {v['original_text'].nunique()} |" for k, v in splits.items()]
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
    from prompt_recovery.schema import atomic_write_text

    return atomic_write_text(path, card_text(df, title, report, splits, extra))
