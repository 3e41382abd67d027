#!/usr/bin/env bash
# One quality run of docs/quality.md from its config to the figures its decision needs, resumable at every step:
#   bash scripts/quality_data.sh                                   # once: runs/data from ../shared/data
#   bash scripts/quality_run.sh configs/experiments/f6-full-pub1k-hw2r34-syn600-len.yaml f6l56e
#   nohup setsid bash scripts/quality_run.sh CONFIG NAME > runs/NAME.log 2>&1 &      # in the background
# 1. `train --config CONFIG` (resumes from its checkpoints; skipped when the run has finished);
# 2. a full fine-tune becomes its rank-56 LoRA copy with the embedding (`extract-lora`, as the shipped adapter was);
# 3. `quality_eval.sh` on PARTS (default: heldout suite suiteb suitec suited; scripts/quality_parts.sh) ->
#    runs/pred/NAME_PART.csv, runs/eval/NAME_PART;
# 4. paired differences against BASELINE's predictions (default shipped: runs/pred/shipped_PART.csv, made by
#    `PARTS="heldout suite suiteb suitec suited" bash scripts/quality_eval.sh default shipped`) under both scorers;
# 5. `recover`'s reranking measured on NAME's answers (scripts/quality_judge.sh: the judge's scores, the default
#    setting's figures, paired against BASELINE's reranked answers);
# 6. the table of all of it for docs/quality.md (scripts/quality_table.py).
# Suites B, C and D are for confirming a choice, never for making one (docs/quality.md, sessions 11, 13 and 15).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?a training config (configs/experiments/...)}
NAME=${2:?a name for the scored model (runs/pred/NAME_PART.csv)}
PARTS=${PARTS:-heldout suite suiteb suitec suited}
BASELINE=${BASELINE:-shipped}
PR=".venv/bin/prompt-recovery"
PY=".venv/bin/python"
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

read -r OUT FULL < <($PY - "$CONFIG" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
print(c["output_dir"], c.get("finetune", "lora") == "full")
PY
)
if [ -f "$OUT/train_summary.json" ]; then stamp "trained already: $OUT"; else stamp "train $CONFIG"; $PR train --config "$CONFIG"; fi
MODEL=$OUT
if [ "$FULL" = True ]; then
  MODEL=$OUT-l56e
  [ -f "$MODEL/adapter_model.safetensors" ] || { stamp "extract-lora -> $MODEL"; $PR extract-lora "$OUT" --rank 56 --output-dir "$MODEL"; }
fi

for part in $PARTS; do
  if [ -f "runs/eval/${NAME}_$part/report.json" ]; then stamp "scored already: $part"; continue; fi
  stamp "score $MODEL as $NAME on $part"
  PARTS="$part" bash scripts/quality_eval.sh "$MODEL" "$NAME"
done
stamp "paired against $BASELINE"
PARTS="$PARTS" bash scripts/quality_paired.sh "$NAME" "$BASELINE" || true

# the judge on NAME's answers and recover's reranking of them, against BASELINE's reranked answers
PARTS="$PARTS" bash scripts/quality_judge.sh "$NAME" "$BASELINE"
stamp "the decision table (scripts/quality_table.py)"
$PY scripts/quality_table.py "$NAME" "$BASELINE" --parts $PARTS
