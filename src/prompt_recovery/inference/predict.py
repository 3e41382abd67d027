"""Batch prediction: a Kaggle-format file of text pairs in, a submission file of instructions out.

    prompt-recovery predict test.csv -o submission.csv
    prompt-recovery predict dev.jsonl -o runs/pred/dev.csv --adapter none --limit 100   # base model, 100 rows

Input: CSV, JSONL or Parquet with columns ``id, original_text, rewritten_text`` (other
columns are ignored; without an ``id`` column the row numbers 0, 1, 2... are used).
Output: ``id, rewrite_prompt`` – exactly one row per input row, in input order, never an
empty instruction. Rows whose original or rewritten text is empty get the fallback
instruction (``--fallback``) and are counted in a warning.

Rows are sorted by length and sent to the model in chunks of ``--chunk-size`` (default 32, or 4×
the prompts the llama-cpp backend keeps in flight; docs/speed.md); after each
chunk the finished rows are appended to ``OUTPUT.partial.jsonl``, so an interrupted run
picks up where it stopped when rerun with the same arguments (``--no-resume`` starts over).
The final file is written atomically and the sidecar removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery.config import ModelOptions, opt
from prompt_recovery.errors import UserError
from prompt_recovery.inference import recover
from prompt_recovery.prompting import DEFAULT_INSTRUCTION
from prompt_recovery.schema import check_output, read_table, table_format, with_row_ids, write_table
from prompt_recovery.scoring.suite import resolve
from prompt_recovery.search.search import SearchOptions, fingerprint_items

log = logging.getLogger("prompt_recovery.inference.predict")
REQUIRED = ("original_text", "rewritten_text")


@dataclass
class PredictConfig(ModelOptions, SearchOptions):
    input: str | None = opt(None, "input file (.csv, .jsonl, .parquet) with id, original_text, rewritten_text",
                            positional=True)
    output: str | None = opt(None, "output file (.csv, .jsonl, .parquet) with id, rewrite_prompt",
                             aliases=("-o",))
    chunk_size: int | None = opt(None, "rows per chunk; partial results are saved after each chunk (default: "
                                       "32, or 4x the prompts in flight of the llama-cpp backend)")
    resume: bool = opt(True, "continue from OUTPUT.partial.jsonl left by an interrupted run")
    limit: int | None = opt(None, "predict only the first N rows (for quick checks)")
    fallback: str = opt(DEFAULT_INSTRUCTION, "instruction written for rows with an empty text")
    progress: bool = opt(True, "show a progress bar")

    def validate(self) -> None:
        if not self.input:
            raise UserError("missing INPUT file; usage: prompt-recovery predict INPUT.csv -o OUTPUT.csv")
        if not self.output:
            raise UserError("missing --output/-o file for the predictions")
        table_format(self.output)  # fail fast on an unsupported extension
        if self.chunk_size is not None and self.chunk_size < 1:
            raise UserError("--chunk-size must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise UserError("--limit must be at least 1")
        if not self.fallback.strip():
            raise UserError("--fallback must not be empty")


def read_pairs(path: str, limit: int | None = None):
    """The input table with an `id` column (row numbers when absent), ids as text."""
    df = read_table(path, required=REQUIRED)
    if limit is not None:
        df = df.iloc[:limit]
    df = with_row_ids(df, path)
    if df["id"].duplicated().any():
        dup = df["id"][df["id"].duplicated()].unique()[:5]
        log.warning("%s has duplicated ids (%s); each row still gets its own prediction", path, ", ".join(dup))
    return df


def is_bad(original, rewritten) -> bool:
    return not (isinstance(original, str) and original.strip() and isinstance(rewritten, str) and rewritten.strip())


def fingerprint(df, cfg: PredictConfig) -> str:
    """Identifies the input rows and model settings, so a sidecar is only reused for the same job."""
    h = hashlib.sha256()
    for key in ("model", "adapter", "prompt_format", "max_new_tokens", "fallback"):
        h.update(f"{key}={getattr(cfg, key)}\n".encode())
    for item in fingerprint_items(cfg):  # search options, only when set
        h.update(item.encode())
    for i, o, r in zip(df["id"], df["original_text"], df["rewritten_text"]):
        h.update(f"{i}\x1f{o}\x1f{r}\x1e".encode())
    return h.hexdigest()[:16]


def sidecar_path(output: str | Path) -> Path:
    p = Path(output)
    return p.with_name(p.name + ".partial.jsonl")


def sidecar_fingerprint(path: Path) -> str | None:
    """The fingerprint in the sidecar's {"fingerprint": ...} header line; None when there is no sidecar or it
    was cut short inside its header (killed before any row was finished). A file at the sidecar's place that
    this command did not write (another first line) is refused, never overwritten or restarted."""
    try:
        with path.open("rb") as f:
            first = f.readline()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UserError(f"cannot read the resume file {path}: {e.strerror or e}") from None
    if not first.endswith(b"\n"):
        return None  # empty, or killed while the header was being written
    try:
        header = json.loads(first)
    except ValueError:  # (also invalid UTF-8)
        header = None
    if not isinstance(header, dict) or "fingerprint" not in header:
        raise UserError(f"{path} exists and was not written by `prompt-recovery predict`; move it away or choose "
                        "another --output")
    return str(header["fingerprint"])


def load_sidecar(path: Path, fp: str, n: int) -> dict[int, str]:
    """Finished rows {row: prediction} from a sidecar written for the same job; {} when there is none or it
    belongs to another input or model (a warning says so)."""
    found = sidecar_fingerprint(path)
    if found is None:
        return {}
    if found != fp:
        log.warning("%s belongs to a different input or model; starting over", path)
        return {}
    done: dict[int, str] = {}
    with path.open("rb") as f:
        f.readline()  # the header
        for line in f:
            try:
                rec = json.loads(line)
                row, pred = int(rec["row"]), str(rec["rewrite_prompt"])
            except (ValueError, KeyError, TypeError):  # (ValueError: also JSON and UTF-8 errors)
                continue  # a line cut short by the interruption
            if 0 <= row < n and pred.strip():
                done[row] = pred
    return done


def default_chunk_size(recoverer) -> int:
    """32 rows, or 4x the prompts the llama-cpp backend keeps in flight (all its workers together):
    every chunk ends with a tail in which fewer and fewer prompts decode per step, so a chunk
    should hold several rounds of them (measured in docs/speed.md, "Chunk size of predict")."""
    return max(32, 4 * getattr(getattr(recoverer, "engine", None), "capacity", 0))


class Sidecar:
    """Append-only JSONL of finished rows, flushed to disk after each chunk."""

    def __init__(self, path: Path, fp: str, fresh: bool):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f = path.open("w" if fresh else "a", encoding="utf-8")
        if fresh:
            self.f.write(json.dumps({"fingerprint": fp}) + "\n")
            self._sync()

    def add(self, rows: list[int], preds: list[str]) -> None:
        for row, pred in zip(rows, preds):
            self.f.write(json.dumps({"row": row, "rewrite_prompt": pred}, ensure_ascii=False) + "\n")
        self._sync()

    def _sync(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def predict_frame(df, cfg: PredictConfig, recoverer=None, sidecar: Path | None = None) -> list[str]:
    """Predictions for every row of `df` (input order); resumes from / writes to `sidecar`."""
    from tqdm.auto import tqdm

    n = len(df)
    originals, rewrittens = df["original_text"].tolist(), df["rewritten_text"].tolist()
    preds: list[str | None] = [None] * n
    bad = [i for i in range(n) if is_bad(originals[i], rewrittens[i])]
    for i in bad:
        preds[i] = cfg.fallback
    if bad:
        log.warning("%d of %d rows have an empty original or rewritten text; they got the fallback "
                    "instruction %r (rows %s%s)", len(bad), n, cfg.fallback,
                    ", ".join(map(str, bad[:10])), ", ..." if len(bad) > 10 else "")
    fp = fingerprint(df, cfg)
    done = load_sidecar(sidecar, fp, n) if (sidecar is not None and cfg.resume) else {}
    for i, p in done.items():
        if preds[i] is None:
            preds[i] = p
    todo = [i for i in range(n) if preds[i] is None]
    if done:
        log.warning("resuming: %d rows already predicted in %s, %d to go", len(done), sidecar, len(todo))
    if not todo:
        return [p for p in preds]  # type: ignore[misc]
    todo.sort(key=lambda i: len(originals[i]) + len(rewrittens[i]))
    if recoverer is None:
        recoverer = recover.load_recoverer(cfg)  # a plain Recoverer unless search options are set
        if cfg.progress:
            print(f"model: {recoverer.describe()}", file=sys.stderr)
    side = Sidecar(sidecar, fp, fresh=not done) if sidecar is not None else None
    bar = tqdm(total=n, initial=n - len(todo), unit="row", desc="predict", disable=not cfg.progress)
    size = cfg.chunk_size or default_chunk_size(recoverer)
    try:
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            outs = recoverer.recover_batch([(originals[i], rewrittens[i]) for i in chunk], cfg.batch_size)
            outs = [o if o and o.strip() else cfg.fallback for o in outs]
            for i, o in zip(chunk, outs):
                preds[i] = o
            if side is not None:
                side.add(chunk, outs)
            bar.update(len(chunk))
    finally:
        bar.close()
        if side is not None:
            side.close()
    return [p for p in preds]  # type: ignore[misc]


def run(cfg: PredictConfig) -> int:
    import pandas as pd

    source = resolve(cfg.input)
    out = Path(cfg.output)
    side = sidecar_path(out)
    # before any work: never overwrite the input, and a folder or unwritable place fails now, not after the model ran
    check_output(out, [source], what=f"--output {out}")
    check_output(side, [source], what=f"the resume file {side}", append=True)
    sidecar_fingerprint(side)  # a foreign file at the resume file's place is refused now
    df = read_pairs(source, cfg.limit)
    if len(df) == 0:
        raise UserError(f"{cfg.input} has no rows")
    preds = predict_frame(df, cfg, sidecar=side)
    assert len(preds) == len(df) and all(p and p.strip() for p in preds)
    write_table(pd.DataFrame({"id": df["id"].tolist(), "rewrite_prompt": preds}), out)
    side.unlink(missing_ok=True)
    print(f"wrote {len(preds)} predictions to {out}")
    return 0
