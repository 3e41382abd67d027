#!/usr/bin/env bash
# Typo-robustness ablation (measured in session 1 with the then default recipe: lr 2e-4, no length hint): the default recipe with and without typo augmentation, on a reduced budget
# (ROWS training rows each), scored on the first EVAL_ROWS dev rows, clean and with typos (rate 0.05):
#   bash scripts/typo_ablation.sh [ROWS=600] [EVAL_ROWS=150]      (VARIANTS="without:0" runs one variant)
# Needs runs/data/train.clean.jsonl, dev.clean.jsonl and dev.typos.jsonl (see scripts/evaluate_default_adapter.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-600}
EVAL_ROWS=${2:-150}
PR=".venv/bin/prompt-recovery"
for variant in ${VARIANTS:-with:0.03 without:0}; do
  name=${variant%%:*}; rate=${variant##*:}
  out=runs/ablation/typos-$name
  [ -f "$out/adapter_model.safetensors" ] || $PR train --config configs/smollm2-135m-cpu.yaml --train-data runs/data/train.clean.jsonl --max-train-rows "$ROWS" \
      --typo-rate "$rate" --output-dir "$out" --eval-steps 1000 --max-val-rows 50
  for set in clean typos; do
    [ -f runs/ablation/pred-$name-$set.csv ] || $PR predict runs/data/dev.$set.jsonl -o runs/ablation/pred-$name-$set.csv --adapter "$out" --limit "$EVAL_ROWS" --no-progress
    $PR evaluate runs/ablation/pred-$name-$set.csv --truth runs/data/dev.$set.jsonl --subset --constants '' \
        -d runs/ablation/eval-$name-$set
  done
done
