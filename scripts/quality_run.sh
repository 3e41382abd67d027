#!/usr/bin/env bash
# One quality run of docs/quality.md from its config to the figures its decision needs, resumable at every step:
#   bash scripts/quality_data.sh                                   # once: runs/data from ../shared/data
#   bash scripts/quality_run.sh configs/experiments/f6-full-pub1k-hw2r34-syn600-len.yaml f6l56e
#   nohup setsid bash scripts/quality_run.sh CONFIG NAME > runs/NAME.log 2>&1 &      # in the background
# 1. `train --config CONFIG` (resumes from its checkpoints; skipped when the run has finished);
# 2. a full fine-tune becomes its rank-56 LoRA copy with the embedding (`extract-lora`, as the shipped adapter was);
# 3. `quality_eval.sh` on PARTS (default: heldout suite suiteb) -> runs/pred/NAME_PART.csv, runs/eval/NAME_PART;
# 4. paired differences against BASELINE's predictions (default shipped: runs/pred/shipped_PART.csv, made by
#    `PARTS="heldout suite suiteb" bash scripts/quality_eval.sh default shipped`) under both scorers;
# 5. `recover`'s reranking measured on NAME's answers: the judge's scores (prototype scores reused from
#    runs/probe/lik96_SET.jsonl where an earlier run left them) and the default setting's figures.
# Suite B is for confirming a choice, never for making one (docs/quality.md, session 11).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?a training config (configs/experiments/...)}
NAME=${2:?a name for the scored model (runs/pred/NAME_PART.csv)}
PARTS=${PARTS:-heldout suite suiteb}
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

# the judge on NAME's answers: the 376 held-out rows no earlier choice used (session 10), both suites
mkdir -p runs/probe
[ -f runs/probe/heldout376.jsonl ] || $PY - <<'PY'
import pandas as pd
d = pd.read_json("runs/data/isplit/heldout_unseen.jsonl", lines=True, dtype={"id": str})
rest = d[~d["id"].isin(d.sample(200, random_state=0)["id"])]   # session 8 chose on the 200 sampled rows
rest.to_json("runs/probe/heldout376.jsonl", orient="records", lines=True, force_ascii=False)
PY
declare -A PAIRS=([heldout]=runs/probe/heldout376.jsonl [suite]=suite [suiteb]=data/eval/family_suite_b.jsonl)
declare -A SHORT=([heldout]=h376 [suite]=suite [suiteb]=suiteb)
SETS=()
for part in $PARTS; do
  [ -n "${PAIRS[$part]:-}" ] || continue
  scores=runs/probe/${NAME}_lik96_${SHORT[$part]}.jsonl
  if [ ! -f "$scores" ]; then
    stamp "judge scores for $part"
    reuse=runs/probe/lik96_${SHORT[$part]}.jsonl
    for s in 0 1; do
      $PY scripts/probe_rewrite_likelihood.py --pairs "${PAIRS[$part]}" --pred "runs/pred/${NAME}_$part.csv" \
          $([ -f "$reuse" ] && echo --reuse "$reuse") --shard $s/2 -o "$scores.s$s" > "$scores.log$s" 2>&1 &
    done
    wait
    cat "$scores.s0" "$scores.s1" > "$scores.tmp" && mv "$scores.tmp" "$scores" && rm -f "$scores.s0" "$scores.s1"
  fi
  SETS+=(--set "$part" "$scores" "${PAIRS[$part]}")
done
stamp "recover's reranking on $NAME's answers (judge 96 tokens, length prior 1, margin 0.05)"
$PY scripts/probe_rerank_sweep.py "${SETS[@]}" --prior src/prompt_recovery/search/length_prior.json \
    --prior-weights 1 --margins 0.05 --out-dir "runs/probe/${NAME}_sweep" 2>&1 | grep -v Loading
stamp done
