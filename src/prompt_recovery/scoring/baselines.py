"""Constant-instruction baselines: how far does one fixed instruction for every row get?

    prompt-recovery baseline /work/shared/data/public_triples/train.csv --output runs/eval/constants.csv
    prompt-recovery baseline dev.csv --constants "Improve the text." "Rewrite this as a poem." --write-best best.csv

Scores each candidate instruction (``--constants``, or ``--constants-file`` with one per
line; default: `CANDIDATES`) as the prediction for every row of a file with true
instructions (``rewrite_prompt``), with the same metrics as `evaluate`, and prints them
ranked by SCS. ``--write-best`` writes a submission (``id, rewrite_prompt``) that uses the
best candidate for every row. Pick the constant on training data, report it on dev data.
The base model without adapter is the other baseline:
``prompt-recovery predict dev.csv -o base.csv --adapter none`` then ``evaluate --compare base.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prompt_recovery.config import opt
from prompt_recovery.errors import UserError
from prompt_recovery.prompting import DEFAULT_INSTRUCTION
from prompt_recovery.schema import atomic_write_text, read_text_file, table_format, write_table
from prompt_recovery.scoring.embedders import Embedder
from prompt_recovery.scoring.evaluate import read_truth
from prompt_recovery.scoring.metrics import score

CANDIDATES = (
    DEFAULT_INSTRUCTION,
    "Rewrite the text in a different style.",
    "Improve the text.",
    "Rewrite this text.",
    "Rewrite this text as a story.",
    "Rewrite this text as a poem.",
    "Rewrite this text in a more formal tone.",
    "Transform this text into a different format.",
    "Rewrite this text as if it were written by a different person, in a new style and tone.",
    "Please improve this text using a different writing style, tone and format, keeping the original meaning.",
    "Convert this text into a letter.",
    "Summarize this text.",
)


@dataclass
class BaselineConfig:
    truth: str | None = opt(None, "file with true instructions (rewrite_prompt; id optional)", positional=True)
    constants: list[str] = opt(None, "candidate constant instructions (default: a built-in list of 12)",
                               default_factory=lambda: list(CANDIDATES))
    constants_file: str | None = opt(None, "text file with one candidate instruction per line")
    embedder: str = opt("minilm", "sentence embedder for SCS (see `evaluate --help`)")
    limit: int | None = opt(None, "use only the first N rows")
    output: str | None = opt(None, "write the ranking table here (.csv, .jsonl, .parquet or .json)")
    write_best: str | None = opt(None, "write a submission file using the best candidate for every row")

    def validate(self) -> None:
        if not self.truth:
            raise UserError("missing TRUTH file; usage: prompt-recovery baseline TRUTH.csv")
        for path in (self.output,):
            if path and not path.endswith(".json"):
                table_format(path)
        if self.write_best:
            table_format(self.write_best)


def rank_constants(candidates, truths, embedder) -> list[dict]:
    """Metrics of each constant instruction on `truths`, best SCS first."""
    rows = []
    for c in candidates:
        s = score([c] * len(truths), truths, embedder)
        rows.append({"instruction": c, **s.summary})
    return sorted(rows, key=lambda r: -r.get("scs", 0.0))


def run(cfg: BaselineConfig) -> int:
    import json

    import pandas as pd

    candidates = list(cfg.constants or [])
    if cfg.constants_file:
        text = read_text_file(cfg.constants_file, "constants")
        candidates = [ln.strip() for ln in text.splitlines() if ln.strip()]
    candidates = list(dict.fromkeys(c for c in candidates if c.strip()))
    if not candidates:
        raise UserError("no candidate instructions given")
    df = read_truth(cfg.truth)
    if cfg.limit:
        df = df.iloc[: cfg.limit]
    if len(df) == 0:
        raise UserError(f"{cfg.truth} has no rows")
    emb = Embedder.load(cfg.embedder)
    ranking = rank_constants(candidates, df["rewrite_prompt"].tolist(), emb)
    print(f"{len(df)} rows of {cfg.truth}; SCS embedder {emb.name}")
    print(f"{'SCS':>7} {'BLEU':>6} {'tokF1':>6} {'catAcc':>6}  instruction")
    for r in ranking:
        print(f"{r['scs']:7.4f} {r['bleu']:6.2f} {r['token_f1']:6.3f} {r['category_accuracy']:6.3f}  {r['instruction']}")
    if cfg.output:
        if cfg.output.endswith(".json"):
            atomic_write_text(cfg.output, json.dumps({"truth": cfg.truth, "n": len(df), "embedder": emb.name,
                                                       "ranking": ranking}, indent=2) + "\n")
        else:
            write_table(pd.DataFrame(ranking), cfg.output)
    if cfg.write_best:
        write_table(pd.DataFrame({"id": df["id"], "rewrite_prompt": ranking[0]["instruction"]}), cfg.write_best)
        print(f"wrote {len(df)} rows with the best constant to {cfg.write_best}")
    return 0
