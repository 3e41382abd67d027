#!/usr/bin/env bash
# Reproduce the shipped adapter's evaluation (model card + README numbers) on the public dev data:
#   bash scripts/evaluate_default_adapter.sh [DATA_DIR=../shared/data/public_triples] [ADAPTER=src/prompt_recovery/adapters/smollm2-135m-prompt-recovery]
#   QUALITY=f10l56e bash scripts/evaluate_default_adapter.sh     # after scripts/ship_adapter.py: the card's quality parts
# Compares, on the same rows: the adapter, SmolLM2-135M-Instruct zero-shot (no adapter) and the best
# constant instruction (picked on the training data: `prompt-recovery baseline runs/data/train.clean.jsonl`);
# then the same adapter on dev with typos injected (rate 0.05) into both texts; for the default adapter, its model
# card's evaluation (scripts/ship_adapter.py --card: dev, dev with typos, and the held-out and suite reports of
# runs/eval/QUALITY_PART).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/public_triples}
ADAPTER=${2:-src/prompt_recovery/adapters/smollm2-135m-prompt-recovery}
BEST_CONSTANT=${BEST_CONSTANT:-"Rewrite the text as a story in the style of a poem."}
PR=".venv/bin/prompt-recovery"
mkdir -p runs/data runs/pred runs/eval
[ -f runs/data/dev.clean.jsonl ] || $PR data clean --eval --input "$DATA/dev.csv" --id-prefix dev --output runs/data/dev.clean.jsonl
[ -f runs/data/dev.typos.jsonl ] || $PR data noise --input runs/data/dev.clean.jsonl --typo-rate 0.05 --seed 0 --output runs/data/dev.typos.jsonl
$PR predict runs/data/dev.clean.jsonl -o runs/pred/dev_adapter.csv --adapter "$ADAPTER"
$PR predict runs/data/dev.typos.jsonl -o runs/pred/dev_typos_adapter.csv --adapter "$ADAPTER"
# the base model's zero-shot answers do not depend on the adapter: made once (delete the file to redo them)
[ -f runs/pred/zero-shot-no-adapter.csv ] || $PR predict runs/data/dev.clean.jsonl -o runs/pred/zero-shot-no-adapter.csv --adapter none
$PR evaluate runs/pred/dev_adapter.csv --truth runs/data/dev.clean.jsonl -d runs/eval/dev \
    --compare runs/pred/zero-shot-no-adapter.csv --constants "$BEST_CONSTANT"
$PR evaluate runs/pred/dev_typos_adapter.csv --truth runs/data/dev.typos.jsonl -d runs/eval/dev_typos
# the card: these dev figures and the quality parts scored as $QUALITY (runs/eval/QUALITY_PART, default shipped)
if [ "$ADAPTER" = src/prompt_recovery/adapters/smollm2-135m-prompt-recovery ]; then
  .venv/bin/python scripts/ship_adapter.py --card "${QUALITY:-shipped}"
fi
