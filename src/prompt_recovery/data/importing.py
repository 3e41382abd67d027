"""Import triple files (Kaggle-style CSV, JSONL, Parquet) into the canonical schema.

    prompt-recovery data import --input ../shared/data/public_triples/dev.csv --id-prefix dev --output runs/data/dev.jsonl

Column names seen in public data are mapped by `schema.COLUMN_ALIASES` (``rewrite_prompt_og``,
``gt_rewrite_prompt``, ``Original/Prompt/Rewritten``, ``source_file``, ...). A file missing a
required column fails fast, naming the columns expected and found.

Row ids: an input ``id`` column is kept (it must be non-empty and unique across all inputs);
otherwise ids are ``<prefix>-00000, <prefix>-00001, ...`` in input order (prefix: ``--id-prefix``,
else the file's stem), so the same file always yields the same ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prompt_recovery.errors import UserError
from prompt_recovery.schema import COLUMNS, read_table

REQUIRED = ("original_text", "rewrite_prompt", "rewritten_text")


def import_table(path: str | Path, id_prefix: str | None = None, source: str | None = None,
                 rewriter: str | None = None, start: int = 0):
    """One file -> canonical DataFrame (columns `schema.COLUMNS`, all strings)."""
    p = Path(path)
    df = read_table(p, required=REQUIRED)
    has_ids = "id" in df.columns and (df["id"].str.strip() != "").all()
    if not has_ids:
        prefix = id_prefix or p.stem
        df["id"] = [f"{prefix}-{i:05d}" for i in range(start, start + len(df))]
    elif id_prefix:
        df["id"] = id_prefix + "-" + df["id"].str.strip()
    if source is not None or "source" not in df.columns:
        df["source"] = source if source is not None else p.name
    if rewriter is not None or "rewriter" not in df.columns:
        df["rewriter"] = rewriter if rewriter is not None else ""
    if "category" not in df.columns:
        df["category"] = ""
    return df[list(COLUMNS)].reset_index(drop=True)


def import_tables(paths: Sequence[str | Path], id_prefix: str | None = None, source: str | None = None,
                  rewriter: str | None = None):
    """Several files -> one canonical DataFrame; ids unique across files (numbering continues per prefix)."""
    import pandas as pd

    if not paths:
        raise UserError("no input files given (use --input FILE [FILE ...])")
    frames, counters = [], {}
    for p in paths:
        prefix = id_prefix or Path(p).stem
        df = import_table(p, id_prefix, source, rewriter, start=counters.get(prefix, 0))
        counters[prefix] = counters.get(prefix, 0) + len(df)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    dup = out["id"][out["id"].duplicated()]
    if len(dup):
        raise UserError(f"duplicate row id(s) across inputs, e.g. {dup.iloc[0]!r}; give --id-prefix or fix the ids")
    return out
