# The evaluation parts of docs/quality.md and their truth files, sourced by quality_eval.sh, quality_paired.sh and
# quality_judge.sh (one place for the map):
# - heldout: instruction-disjoint held-out split of the public data (runs/data/isplit/heldout_unseen.jsonl, built by
#   scripts/quality_data.sh; whole instruction clusters and their originals never trained on)
# - dev: the public dev split (shares its prompt style with train: overstates quality)
# - suite: the project's instruction-family suite (family accuracy)
# - suiteb, suitec, suited, suitee: family suites written in sessions 11, 13, 15 and 16 (data/eval; for confirming,
#   never for choosing)
# JUDGED: the rows the reranker is measured on (quality_judge.sh): held-out is the 376 held-out rows no earlier
# choice used (session 10: 200 of the 576 chose the margin); SHORT: the judge score files' short names.
declare -A TRUTH=([heldout]=runs/data/isplit/heldout_unseen.jsonl [dev]=runs/data/dev.clean.jsonl [suite]=suite
                  [suiteb]=data/eval/family_suite_b.jsonl [suitec]=data/eval/family_suite_c.jsonl
                  [suited]=data/eval/family_suite_d.jsonl [suitee]=data/eval/family_suite_e.jsonl)
declare -A JUDGED=([heldout]=runs/probe/heldout376.jsonl [suite]=suite [suiteb]=${TRUTH[suiteb]}
                   [suitec]=${TRUTH[suitec]} [suited]=${TRUTH[suited]}
                   [suitee]=${TRUTH[suitee]})
declare -A SHORT=([heldout]=h376 [suite]=suite [suiteb]=suiteb [suitec]=suitec [suited]=suited [suitee]=suitee)
check_parts() {  # every part named is known
  for part in "$@"; do
    [ -n "${TRUTH[$part]:-}" ] || { echo "unknown part $part (known: ${!TRUTH[*]})" >&2; exit 2; }
  done
}
