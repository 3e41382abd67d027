#!/usr/bin/env bash
# Build the data of the quality work (docs/quality.md) from ../shared/data and data/handwritten:
#   bash scripts/quality_data.sh [SHARED_DATA=../shared/data]
# 1. clean the public train/dev triples and the synthetic set;
# 2. an instruction-disjoint split of the public training rows (runs/data/isplit: train 85% / heldout 15%
#    of the rows, whole instruction clusters held out, originals disjoint too);
# 3. heldout_unseen = the held-out rows the previously shipped adapter never trained on (its 2,600 rows are
#    reconstructed from its recipe: max_train_rows 2600, seed 42), so the old and new models are compared fairly;
# 4. extra training data (synthetic, hand-written) with every row whose instruction falls in a held-out
#    cluster removed (`data exclude`), so the held-out score stays a measure of unseen instructions.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-../shared/data}
PR=".venv/bin/prompt-recovery"
mkdir -p runs/data
[ -f runs/data/train.clean.jsonl ] || $PR data clean --input "$D/public_triples/train.csv" --id-prefix train --output runs/data/train.clean.jsonl
[ -f runs/data/dev.clean.jsonl ] || $PR data clean --eval --input "$D/public_triples/dev.csv" --id-prefix dev --output runs/data/dev.clean.jsonl
[ -f runs/data/synthetic.clean.jsonl ] || $PR data clean --input "$D/synthetic/triples.csv" --output runs/data/synthetic.clean.jsonl
[ -f runs/data/isplit/clusters.json ] || $PR data split --by instruction --input runs/data/train.clean.jsonl \
    --output runs/data/isplit --split-names train heldout --fractions 0.85 0.15 --cluster-size 12 --seed 0
.venv/bin/python - <<'PY'
import pandas as pd
from prompt_recovery.train import load_rows
seen = {r["id"] for r in load_rows("runs/data/train.clean.jsonl", 2600, 42)}  # the shipped adapter's rows
h = pd.read_json("runs/data/isplit/heldout.jsonl", lines=True, dtype={"id": str})
h[~h["id"].isin(seen)].to_json("runs/data/isplit/heldout_unseen.jsonl", orient="records", lines=True, force_ascii=False)
print(f"heldout_unseen: {(~h['id'].isin(seen)).sum()} of {len(h)} held-out rows")
PY
$PR data import --input data/handwritten/*.jsonl --output runs/data/handwritten.jsonl
for part in synthetic.clean handwritten; do
  $PR data exclude --input runs/data/$part.jsonl --clusters runs/data/isplit/clusters.json --exclude-splits heldout \
      --output runs/data/$part.kept.jsonl
done
