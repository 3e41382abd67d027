"""The `data` command: import, clean, split and describe triple files.

    prompt-recovery data import --input a.csv b.jsonl --output runs/data/all.jsonl
    prompt-recovery data clean  --input ../shared/data/public_triples/train.csv --id-prefix train --output runs/data/train.clean.jsonl
    prompt-recovery data clean  --eval --input ../shared/data/public_triples/dev.csv --id-prefix dev --output runs/data/dev.clean.jsonl
    prompt-recovery data split  --input runs/data/train.clean.jsonl --output runs/data/splits --fractions 0.9 0.05 0.05
    prompt-recovery data split  --by instruction --input runs/data/all.clean.jsonl --output runs/data/heldout --split-names train dev heldout --fractions 0.8 0.05 0.15
    prompt-recovery data split  --by source --holdout-sources gemma1000.csv --split-names train heldout --fractions 0.5 0.5 ...
    prompt-recovery data exclude --input synthetic.csv --clusters runs/data/heldout/clusters.json --exclude-splits heldout --output runs/data/synthetic.kept.jsonl
    prompt-recovery data card   --input runs/data/train.clean.jsonl
    prompt-recovery data noise  --input runs/data/dev.clean.jsonl --typo-rate 0.05 --output runs/data/dev.typos.jsonl

`clean` writes OUTPUT, `<stem>.report.json` (rows in, dropped per reason, rows out) and
`<stem>.dropped.jsonl` (every dropped row with its reason) next to it, plus a dataset card
`<stem>.card.md`. Every filter can be switched off (`--no-drop-refusals`, ...); `--eval` keeps only
the preamble strip and the drop of rows with an empty field, for evaluation sets.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery.config import opt
from prompt_recovery.data.clean import Filters, clean
from prompt_recovery.data.importing import import_tables
from prompt_recovery.data.noise import augment
from prompt_recovery.data.split import (exclude_clusters, split_by_instruction, split_by_original, split_by_source,
                                        write_card)
from prompt_recovery.errors import UserError
from prompt_recovery.schema import atomic_write_text, check_output, check_output_dir, read_table, write_table

ACTIONS = ("import", "clean", "split", "card", "noise", "exclude")


@dataclass
class DataConfig:
    action: str = opt("clean", "what to do: " + ", ".join(ACTIONS), positional=True, choices=ACTIONS)
    input: list[str] | None = opt(None, "input file(s): .csv, .jsonl or .parquet", aliases=("-i",))
    output: str | None = opt(None, "output file (import, clean) or folder (split)", aliases=("-o",))
    id_prefix: str | None = opt(None, "row ids <prefix>-00000... in input order when the input has no id column "
                                "(default: the file's stem)")
    source: str | None = opt(None, "set the source column (default: the input's source column, else the file name)")
    rewriter: str | None = opt(None, "set the rewriter column (default: the input's rewriter column, else empty)")
    eval: bool = opt(False, "evaluation set: only strip preambles and drop rows with an empty field")
    strip_preamble: bool = opt(True, "strip assistant preambles/closings from rewritten_text")
    drop_empty: bool = opt(True, "drop rows with an empty original, prompt or rewrite")
    drop_short: bool = opt(True, "drop rewrites shorter than --min-rewrite-chars")
    min_rewrite_chars: int = opt(10, "minimum rewrite length in characters")
    drop_refusals: bool = opt(True, "drop refusals and clarification requests")
    drop_restated: bool = opt(True, "drop rewrites that contain the whole instruction")
    min_restated_words: int = opt(3, "only prompts of at least this many words count as restated")
    drop_identical: bool = opt(True, "drop rewrites identical to the original")
    drop_duplicates: bool = opt(True, "drop exact duplicate triples")
    drop_near_duplicates: bool = opt(True, "drop near-duplicate triples (same original+prompt, similar rewrite)")
    near_duplicate_ratio: float = opt(0.9, "similarity above which two rewrites count as near duplicates")
    fractions: list[float] = opt(None, "split: fractions for train dev test (default 0.9 0.05 0.05)",
                                 default_factory=lambda: [0.9, 0.05, 0.05])
    split_names: list[str] = opt(None, "split: names of the splits", default_factory=lambda: ["train", "dev", "test"])
    seed: int = opt(0, "split: random seed")
    by: str = opt("original", "split: what the splits are disjoint by: original (text), instruction (clusters of "
                  "instructions, originals disjoint too) or source (--holdout-sources)",
                  choices=("original", "instruction", "source"))
    cluster_file: str | None = opt(None, "split --by instruction: JSON instruction -> cluster id used where it matches "
                                   "(e.g. pedromb_prompt_to_cluster.json); other instructions are clustered by embeddings")
    cluster_size: int = opt(8, "split --by instruction: about this many distinct instructions per embedding cluster")
    holdout_sources: list[str] | None = opt(None, "split --by source: the source values held out")
    clusters: str | None = opt(None, "exclude: the clusters.json a `split --by instruction` wrote")
    exclude_splits: list[str] | None = opt(None, "exclude: drop rows whose instruction falls in these splits' clusters",
                                           default_factory=lambda: ["test"])
    format: str = opt("jsonl", "split: output file format", choices=("jsonl", "csv", "parquet"))
    typo_rate: float = opt(0.05, "noise: per-letter typo rate injected into original_text and rewritten_text")

    def validate(self) -> None:
        if not self.input:
            raise UserError(f"data {self.action}: give --input FILE [FILE ...]")
        if self.action in ("import", "clean", "split", "noise", "exclude") and not self.output:
            raise UserError(f"data {self.action}: give --output")
        if self.action == "exclude" and not self.clusters:
            raise UserError("data exclude: give --clusters (the clusters.json of a `data split --by instruction`)")
        if self.action == "split" and self.by == "source" and not self.holdout_sources:
            raise UserError("data split --by source: give --holdout-sources NAME [NAME ...]")

    def filters(self):
        if self.eval:
            return Filters.eval_safe()
        return Filters(**{k: getattr(self, k) for k in Filters.__dataclass_fields__})


def sibling(output: str | Path, suffix: str) -> Path:
    """runs/data/train.clean.jsonl + '.report.json' -> runs/data/train.clean.report.json"""
    p = Path(output)
    return p.with_name(p.stem + suffix)


def command_line() -> str:
    return "prompt-recovery " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""


def run(cfg: DataConfig) -> int:
    inputs = [*cfg.input, cfg.clusters, cfg.cluster_file]  # never overwrite an input; fail before any work
    if cfg.action == "split":
        check_output_dir(cfg.output, inputs, [f"{n}.{cfg.format}" for n in cfg.split_names] + ["README.md",
                         "clusters.json"], what=f"--output {cfg.output}")
    elif cfg.action != "card":
        extra = {"clean": (".dropped.jsonl", ".report.json", ".card.md"), "exclude": (".excluded.jsonl",)}
        for o in [cfg.output, *(sibling(cfg.output, x) for x in extra.get(cfg.action, ()))]:
            check_output(o, inputs, what=f"--output {o}" if o == cfg.output else str(o))
    if cfg.action == "card":
        for path in cfg.input:
            df = read_table(path)
            rep = sibling(path, ".report.json")
            report = json.loads(rep.read_text()) if rep.is_file() else None
            print(write_card(df, sibling(path, ".card.md"), title=Path(path).name, report=report))
        return 0
    df = import_tables(cfg.input, cfg.id_prefix, cfg.source, cfg.rewriter)
    if cfg.action == "noise":
        write_table(augment(df, cfg.typo_rate, cfg.seed), cfg.output)
        print(f"wrote {len(df)} rows with typos (rate {cfg.typo_rate}, seed {cfg.seed}) to {cfg.output}")
        return 0
    if cfg.action == "import":
        write_table(df, cfg.output)
        print(f"wrote {len(df)} rows to {cfg.output}")
        return 0
    if cfg.action == "clean":
        kept, dropped, report = clean(df, cfg.filters(), progress=True)
        report = {"inputs": list(cfg.input), "output": str(cfg.output), "mode": "eval" if cfg.eval else "train",
                  "command": command_line(), **report}
        write_table(kept, cfg.output)
        write_table(dropped, sibling(cfg.output, ".dropped.jsonl"))
        atomic_write_text(sibling(cfg.output, ".report.json"), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        write_card(kept, sibling(cfg.output, ".card.md"), title=Path(cfg.output).name, report=report)
        d = ", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v) or "none"
        print(f"{report['rows_in']} rows in, {report['preambles_stripped']} preambles stripped, dropped: {d}; "
              f"{report['rows_out']} rows out -> {cfg.output}")
        return 0
    if cfg.action == "exclude":
        try:
            info = json.loads(Path(cfg.clusters).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"--clusters {cfg.clusters}: cannot read it ({e})") from None
        if not isinstance(info, dict) or "centroids" not in info or "clusters" not in info:
            raise UserError(f"--clusters {cfg.clusters} is not a clusters.json written by `data split --by instruction`")
        kept, out_rows = exclude_clusters(df, info, cfg.exclude_splits)
        write_table(kept, cfg.output)
        write_table(out_rows, sibling(cfg.output, ".excluded.jsonl"))
        print(f"{len(df)} rows in, {len(out_rows)} with an instruction in the clusters of "
              f"{', '.join(cfg.exclude_splits)} excluded; {len(kept)} rows out -> {cfg.output}")
        return 0
    if cfg.action == "split":
        out = Path(cfg.output)
        if cfg.by == "instruction":
            parts, info = split_by_instruction(df, cfg.fractions, cfg.split_names, cfg.seed,
                                               cluster_file=cfg.cluster_file, cluster_size=cfg.cluster_size)
            atomic_write_text(out / "clusters.json", json.dumps(info) + "\n")
            extra = {k: v for k, v in info.items() if k != "centroids"}
        elif cfg.by == "source":
            parts, extra = split_by_source(df, cfg.holdout_sources, cfg.split_names)
        else:
            parts = split_by_original(df, cfg.fractions, cfg.split_names, cfg.seed)
            extra = {"by": "original_text", "seed": cfg.seed, "fractions": list(cfg.fractions)}
        for name, part in parts.items():
            write_table(part, out / f"{name}.{cfg.format}")
            print(f"{name}: {len(part)} rows, {part['original_text'].nunique()} originals, "
                  f"{part['rewrite_prompt'].nunique()} instructions -> {out / f'{name}.{cfg.format}'}")
        for name, n in (extra.get("dropped_shared_originals") or {}).items():
            if n:
                print(f"{name}: {n} rows dropped because their original is in a later split")
        write_card(df, out / "README.md", title=out.name, splits=parts, extra={"split": extra})
        return 0
    raise UserError(f"unknown action {cfg.action!r}")
