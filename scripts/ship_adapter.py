"""Make a scored quality run the default adapter, and write the default adapter's model-card evaluation.

    .venv/bin/python scripts/ship_adapter.py runs/exp/f10-full-pub1k-hw2r34567-syn600-len-l56e --run F10
    QUALITY=f10l56e bash scripts/evaluate_default_adapter.sh       # dev figures of the new default, then the card
    .venv/bin/python scripts/ship_adapter.py --card f10l56e         # the card alone (what that script ends with)

Without --card: copies the files of an extracted adapter (`extract-lora` output: ADAPTER_FILES) over the default
adapter's (`src/prompt_recovery/adapters/smollm2-135m-prompt-recovery`; each written under a temporary name, then
renamed), and names the run in extracted.json's "from". The card's evaluation is then stale until
`evaluate_default_adapter.sh` has scored the new default on dev.

With --card NAME: the card's evaluation (`training.card.add_evaluation`) from every report there is, in one table:
dev and dev with typos (runs/eval/dev, runs/eval/dev_typos: `evaluate_default_adapter.sh`) and the quality parts
scored as NAME (runs/eval/NAME_PART, `scripts/quality_eval.sh` / `quality_run.sh`): held-out and suites A-E. A part
without a report is left out and named on stderr; dev must be there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "src/prompt_recovery/adapters/smollm2-135m-prompt-recovery"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "extracted.json", "loss.png",
                 "prompt_recovery.json", "train_config.yaml", "train_log.jsonl", "train_summary.json")
# card label -> (report directory, what the note says of it)
PARTS = {
    "heldout": ("shipped adapter, heldout", "Held-out: the instruction-disjoint split of docs/quality.md ({n} rows "
                "whose instruction clusters and originals this adapter never trained on)."),
    "suite": ("shipped adapter, family suite", "Family suite: the {n} hand-written triples of "
              "examples/family_suite.jsonl (family accuracy = category match)."),
    "suiteb": ("shipped adapter, suite B", "Suite B: the {n} hand-written triples of data/eval/family_suite_b.jsonl, "
               "written in session 11, for confirming only."),
    "suitec": ("shipped adapter, suite C", "Suite C: the {n} triples of data/eval/family_suite_c.jsonl, written in "
               "session 13 by writers who saw neither earlier suite nor the training rows, for confirming only."),
    "suited": ("shipped adapter, suite D", "Suite D: the {n} triples of data/eval/family_suite_d.jsonl, written in "
               "session 15 by writers who saw no suite and no training row, for confirming only."),
    "suitee": ("shipped adapter, suite E", "Suite E: the {n} triples of data/eval/family_suite_e.jsonl, written in "
               "session 16 by writers who saw no suite and no training row, for confirming only."),
}


def copy_adapter(src: Path, run: str, dest: Path = DEFAULT) -> None:
    missing = [f for f in ADAPTER_FILES if not (src / f).is_file()]
    if missing:
        sys.exit(f"ship_adapter: {src} lacks {', '.join(missing)} (an `extract-lora` output directory?)")
    for f in ADAPTER_FILES:
        tmp = dest / f".{f}.tmp"
        if f == "extracted.json":
            meta = json.loads((src / f).read_text())
            meta["from"] = f"{meta.get('from', src)} (run {run} of docs/quality.md)"
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        else:
            shutil.copyfile(src / f, tmp)
        os.replace(tmp, dest / f)
    print(f"ship_adapter: {len(ADAPTER_FILES)} files of {src} -> {dest}; "
          f"now: QUALITY=NAME bash scripts/evaluate_default_adapter.sh")


def write_card(name: str, dest: Path = DEFAULT, eval_dir: Path = ROOT / "runs/eval") -> dict:
    from prompt_recovery.training.card import add_evaluation

    dev = eval_dir / "dev/report.json"
    if not dev.is_file():
        sys.exit(f"ship_adapter: no {dev}: run `bash scripts/evaluate_default_adapter.sh` first")
    n_dev = json.loads(dev.read_text())["metrics"]["n"]
    reports = {"shipped adapter, dev": dev,
               "shipped adapter, dev with typos (rate 0.05)": eval_dir / "dev_typos/report.json"}
    note = [f"Public dev split ({n_dev} rows, ../shared/data/public_triples/dev.csv cleaned with `data clean --eval`); "
            "it shares its prompt style with the public training data and overstates quality on unseen instructions. "
            "SCS with all-MiniLM-L6-v2 (offline); values are [mean, 95% bootstrap CI low, high]. Predictions by the "
            "default fast path (llama.cpp, merged GGUF). Reproduce: `bash scripts/evaluate_default_adapter.sh`."]
    scored = []
    for part, (label, says) in PARTS.items():
        rep = eval_dir / f"{name}_{part}/report.json"
        if not rep.is_file():
            print(f"ship_adapter: no {rep}: {label} left out of the card", file=sys.stderr)
            continue
        reports[label] = rep
        note.append(says.format(n=json.loads(rep.read_text())["metrics"]["n"]))
        scored.append(part)
    if scored:
        note.append(f"Reproduce: `bash scripts/quality_data.sh && PARTS=\"{' '.join(scored)}\" bash "
                    "scripts/quality_eval.sh default shipped` (plain answers; `recover` reranks them by default: "
                    "docs/quality.md).")
    add_evaluation(dest, reports, note=" ".join(note))
    print(f"ship_adapter: card evaluation written from {len(reports)} reports ({dest / 'evaluation.json'})")
    return reports


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("adapter", nargs="?", type=Path, help="an extract-lora output directory to make the default")
    p.add_argument("--run", help="the run's name in docs/quality.md (F10 ...), for extracted.json")
    p.add_argument("--card", metavar="NAME", help="write the card's evaluation from runs/eval/dev* and NAME_PART")
    a = p.parse_args(argv)
    if a.adapter is None and not a.card:
        p.error("give an adapter directory to ship, or --card NAME")
    if a.adapter is not None:
        if not a.run:
            p.error("--run is needed with an adapter directory")
        copy_adapter(a.adapter, a.run)
    if a.card:
        write_card(a.card)


if __name__ == "__main__":
    main()
