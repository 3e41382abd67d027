#!/usr/bin/env bash
# Paired bootstrap differences between two models scored by scripts/quality_eval.sh (same rows), under both
# SCS scorers (MiniLM and the second, SmolLM2-token scorer), as the comparison tables of docs/quality.md give them:
#   bash scripts/quality_paired.sh f3 f2                 # runs/pred/f3_{heldout,suite}.csv minus runs/pred/f2_...
#   PARTS="suite" bash scripts/quality_paired.sh f3 f1l64
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?name of the model (runs/pred/A_PART.csv)}
B=${2:?name of the model it is compared with}
PARTS=${PARTS:-heldout suite}
source scripts/quality_parts.sh
check_parts $PARTS
for part in $PARTS; do
  for embedder in minilm smollm2-tokens; do
    echo "== $A - $B $part $embedder"
    .venv/bin/prompt-recovery evaluate "runs/pred/${A}_$part.csv" --truth "${TRUTH[$part]}" --no-plots --constants "" \
        --compare "runs/pred/${B}_$part.csv" --embedder "$embedder" -d "runs/eval/${A}_vs_${B}_${part}_$embedder" \
        2>/dev/null | grep "model minus it"
  done
done
