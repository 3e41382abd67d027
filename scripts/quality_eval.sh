#!/usr/bin/env bash
# Score one recovery model on the three quality measures of docs/quality.md, same rows for every model:
#   bash scripts/quality_eval.sh ADAPTER NAME [MODEL=smollm2-135m] [PREDICT OPTIONS...]
#   PARTS="heldout suite" bash scripts/quality_eval.sh runs/exp/r7 r7beam4 smollm2-135m --candidates 4   # a test-time option
# PARTS (default heldout dev suite; the others: suiteb suitec suited): scripts/quality_parts.sh.
# Writes runs/pred/NAME_{heldout,dev,suite}.csv and runs/eval/NAME_{heldout,dev,suite}/report.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
ADAPTER=${1:?adapter directory (or default / none)}
NAME=${2:?a name for this model}
MODEL=${3:-smollm2-135m}
shift $(( $# < 3 ? $# : 3 ))
PARTS=${PARTS:-heldout dev suite}
PR=".venv/bin/prompt-recovery"
mkdir -p runs/pred runs/eval
source scripts/quality_parts.sh
check_parts $PARTS
for part in $PARTS; do
  $PR predict "${TRUTH[$part]}" -o "runs/pred/${NAME}_$part.csv" --model "$MODEL" --adapter "$ADAPTER" "$@"
  $PR evaluate "runs/pred/${NAME}_$part.csv" --truth "${TRUTH[$part]}" -d "runs/eval/${NAME}_$part" --no-plots \
      --constants "" | sed -n 1,2p
done
