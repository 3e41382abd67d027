"""The canonical row and table I/O: CSV, JSONL and Parquet, column mapping, atomic writes.

Canonical columns: ``id, original_text, rewrite_prompt, rewritten_text`` plus provenance
``source, rewriter, category``. Files from the wild use other names; `COLUMN_ALIASES` maps
them (case-insensitive) so every stage sees the canonical ones.

    python -c "from prompt_recovery.schema import read_table; print(read_table('x.csv').head())"
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from prompt_recovery.errors import UserError

CANONICAL = ("id", "original_text", "rewrite_prompt", "rewritten_text")
PROVENANCE = ("source", "rewriter", "category")
COLUMNS = CANONICAL + PROVENANCE

# alias (lower-case) -> canonical name
COLUMN_ALIASES = {
    "original": "original_text", "original text": "original_text", "orig_text": "original_text",
    "text": "original_text", "input_text": "original_text",
    "prompt": "rewrite_prompt", "rewrite_prompt_og": "rewrite_prompt", "gt_rewrite_prompt": "rewrite_prompt",
    "instruction": "rewrite_prompt", "rewrite prompt": "rewrite_prompt", "rewrite_instruction": "rewrite_prompt",
    "rewritten": "rewritten_text", "rewritten text": "rewritten_text", "rewrite": "rewritten_text",
    "output_text": "rewritten_text", "rewritten_text_og": "rewritten_text",
    "source_file": "source", "model": "rewriter",
}

def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}; use .csv, .jsonl or .parquet")
    return FORMATS[suffix]


def canonicalize_columns(df):
    """Rename known aliases to canonical names (canonical names already present win)."""
    rename = {}
    present = {c.lower() for c in df.columns}
    for col in df.columns:
        low = str(col).strip().lower()
        if low in COLUMNS and col != low:
            rename[col] = low
        elif low in COLUMN_ALIASES:
            target = COLUMN_ALIASES[low]
            if target not in present and target not in rename.values():
                rename[col] = target
    return df.rename(columns=rename)


def read_table(path: str | Path, required: Iterable[str] = (), map_columns: bool = True):
    """Read CSV/JSONL/Parquet into a DataFrame of strings (ids kept as text), validating columns."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise UserError(f"input file not found: {p}")
    fmt = table_format(p)
    try:
        if fmt == "csv":
            df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
        elif fmt == "jsonl":
            df = pd.read_json(p, lines=True, dtype=False)
        else:
            df = pd.read_parquet(p)
    except UnicodeDecodeError as e:
        raise UserError(f"{p} is not valid UTF-8 (byte {e.start})") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise UserError(f"cannot read {p} as {fmt}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if map_columns:
        df = canonicalize_columns(df)
    require_columns(df, required, p)
    for col in df.columns:
        if df[col].dtype == object or col in COLUMNS:
            df[col] = df[col].map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v))
    return df


def require_columns(df, required: Iterable[str], where: str | Path = "input") -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}; "
                        f"found {', '.join(map(str, df.columns)) or '(none)'}")


def write_table(df, path: str | Path) -> Path:
    """Write atomically (temporary file in the same folder, then rename)."""
    p = Path(path)
    fmt = table_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if fmt == "csv":
            df.to_csv(tmp, index=False, encoding="utf-8")
        elif fmt == "jsonl":
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            df.to_parquet(tmp, index=False)
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, _umask_mode())
    os.replace(tmp, p)
    return p
