#!/usr/bin/env bash
# `recover`'s reranking measured on one scored model's plain answers (runs/pred/NAME_PART.csv, from quality_eval.sh):
#   PARTS="heldout suite suiteb suitec suited" bash scripts/quality_judge.sh NAME [BASELINE=shipped]
# 1. the judge's scores of NAME's answer and the 17 family prototypes per row (scripts/probe_rewrite_likelihood.py,
#    96 rewrite tokens, two processes) -> runs/probe/NAME_lik96_SET.jsonl; the prototypes' scores do not depend on the
#    recovery model, so they are reused from runs/probe/lik96_SET.jsonl when an earlier run left it (and left for the
#    next run when not);
# 2. the shipped family prior's category probabilities of each pair (scripts/probe_family_classifier.py; they do not
#    depend on the recovery model) -> runs/probe/clf/PART.jsonl;
# 3. `recover`'s setting (length prior weight 1, family prior weight 2, margin 0.05) on those scores, and the setting
#    before the family prior (weight 0) -> runs/probe/NAME_sweep/PART/w1_a0_k2_m0.05.csv and w1_a0_m0.05.csv with
#    their figures (scripts/probe_rerank_sweep.py);
# 4. paired differences of recover's reranked answers against BASELINE's (runs/probe/BASELINE_sweep), both scorers.
# The held-out part is the 376 held-out rows no earlier choice used (session 10: 200 of the 576 chose the margin).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?a scored model (runs/pred/NAME_PART.csv)}
BASELINE=${2:-shipped}
PARTS=${PARTS:-heldout suite suiteb suitec suited}
PY=".venv/bin/python"
# recover's --family-prior-weight (docs/quality.md, session 17), read from its default
FAMILY_WEIGHT=$($PY -c "from prompt_recovery.search.search import SearchOptions as O; print(f'{O().family_prior_weight:g}')")
SETTING=w1_a0_k${FAMILY_WEIGHT}_m0.05
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

mkdir -p runs/probe
[ -f runs/probe/heldout376.jsonl ] || $PY - <<'PY'
import pandas as pd
d = pd.read_json("runs/data/isplit/heldout_unseen.jsonl", lines=True, dtype={"id": str})
rest = d[~d["id"].isin(d.sample(200, random_state=0)["id"])]   # session 8 chose on the 200 sampled rows
rest.to_json("runs/probe/heldout376.jsonl", orient="records", lines=True, force_ascii=False)
PY
source scripts/quality_parts.sh
check_parts $PARTS
SETS=()
CLF=()
for part in $PARTS; do
  [ -n "${JUDGED[$part]:-}" ] || { echo "no judge set for part $part (known: ${!JUDGED[*]})" >&2; exit 2; }
  scores=runs/probe/${NAME}_lik96_${SHORT[$part]}.jsonl
  if [ ! -f "$scores" ]; then
    stamp "judge scores for $part"
    reuse=runs/probe/lik96_${SHORT[$part]}.jsonl
    for s in 0 1; do
      $PY scripts/probe_rewrite_likelihood.py --pairs "${JUDGED[$part]}" --pred "runs/pred/${NAME}_$part.csv" \
          $([ -f "$reuse" ] && echo --reuse "$reuse") --shard $s/2 -o "$scores.s$s" > "$scores.log$s" 2>&1 &
    done
    wait
    cat "$scores.s0" "$scores.s1" > "$scores.tmp" && mv "$scores.tmp" "$scores" && rm -f "$scores.s0" "$scores.s1"
    [ -f "$reuse" ] || cp "$scores" "$reuse"
  fi
  SETS+=(--set "$part" "$scores" "${JUDGED[$part]}" --clf "$part" "runs/probe/clf/$part.jsonl")
  CLF+=(--set "$part" "${JUDGED[$part]}")
done
stamp "the family prior's category probabilities"
$PY scripts/probe_family_classifier.py --prior src/prompt_recovery/search/family_prior.json "${CLF[@]}" \
    --dump runs/probe/clf --thresholds 0.6 2>&1 | grep -v Loading | grep -v misses
stamp "recover's reranking on $NAME's answers (judge 96 tokens, length prior 1, family prior 0 and $FAMILY_WEIGHT, margin 0.05)"
$PY scripts/probe_rerank_sweep.py "${SETS[@]}" --prior src/prompt_recovery/search/length_prior.json \
    --prior-weights 1 --clf-weights 0 "$FAMILY_WEIGHT" --margins 0.05 --out-dir "runs/probe/${NAME}_sweep" 2>&1 \
    | grep -v Loading
if [ "$NAME" != "$BASELINE" ]; then
  for part in $PARTS; do
    base=runs/probe/${BASELINE}_sweep/$part/$SETTING.csv
    [ -f "$base" ] || { echo "no reranked answers of $BASELINE for $part ($base): PARTS=$part bash $0 $BASELINE"; continue; }
    for embedder in minilm smollm2-tokens; do
      echo "== reranked $NAME - $BASELINE $part $embedder"
      .venv/bin/prompt-recovery evaluate "runs/probe/${NAME}_sweep/$part/$SETTING.csv" --truth "${JUDGED[$part]}" \
          --no-plots --constants "" --compare "$base" --embedder "$embedder" \
          -d "runs/eval/${NAME}rr_vs_${BASELINE}rr_${part}_$embedder" 2>/dev/null | grep -E "family|model minus it"
    done
  done
fi
stamp done
