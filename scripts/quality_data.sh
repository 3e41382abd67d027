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
from prompt_recovery.training.dataset import load_rows
seen = {r["id"] for r in load_rows("runs/data/train.clean.jsonl", 2600, 42)}  # the shipped adapter's rows
h = pd.read_json("runs/data/isplit/heldout.jsonl", lines=True, dtype={"id": str})
h[~h["id"].isin(seen)].to_json("runs/data/isplit/heldout_unseen.jsonl", orient="records", lines=True, force_ascii=False)
print(f"heldout_unseen: {(~h['id'].isin(seen)).sum()} of {len(h)} held-out rows")
PY
# the hand-written rows of sessions 1-8 (the mixes of every run up to F3 and the shipped adapter), then round 3
# (session 9: summarise, expand, simplify, casual, formal, tone, point of view, persona) as a part of its own
HW="formats literary ops_summarise round2_a round2_b round2_c tone_persona"
$PR data import --input $(for f in $HW; do echo data/handwritten/$f.jsonl; done) --output runs/data/handwritten.jsonl
$PR data import --input data/handwritten/round3_*.jsonl --output runs/data/handwritten_r3.jsonl
# round 4 (session 11: the same original summarised, expanded, and changed in tone / reader / voice at its length)
$PR data import --input data/handwritten/round4_*.jsonl --output runs/data/handwritten_r4.jsonl
# round 5 (session 13: the same original in two moods, a persona voice and a kind of humour; for a child, from
# another narrator, casual and formal; in four forms: email, post, title, list, dialogue, news, ad)
$PR data import --input data/handwritten/round5_*.jsonl --output runs/data/handwritten_r5.jsonl
# round 6 (session 14: the same original summarised, expanded, formal and casual in its own form; for a beginner,
# funny, in one mood, and summarised or expanded)
$PR data import --input data/handwritten/round6_*.jsonl --output runs/data/handwritten_r6.jsonl
# round 7 (session 15: the same original expanded, from another narrator, as a bulleted list and for a child; or
# summarised, formal, from another narrator and expanded)
$PR data import --input data/handwritten/round7_*.jsonl --output runs/data/handwritten_r7.jsonl
# round 8 (session 15: the same original expanded and in one mood, both in its own form, against a form change: a
# poem or a dialogue; casual or summarised)
$PR data import --input data/handwritten/round8_*.jsonl --output runs/data/handwritten_r8.jsonl
for part in synthetic.clean handwritten handwritten_r3 handwritten_r4 handwritten_r5 handwritten_r6 handwritten_r7 \
            handwritten_r8; do
  $PR data exclude --input runs/data/$part.jsonl --clusters runs/data/isplit/clusters.json --exclude-splits heldout \
      --output runs/data/$part.kept.jsonl
done
# the training mixes of docs/quality.md (source column prefixed with the part's name)
.venv/bin/python - <<'PY'
import pandas as pd
def part(path, name):
    d = pd.read_json(path, lines=True, dtype={"id": str})
    d["source"] = name + ":" + (d["source"].astype(str) if "source" in d else "")
    return d[["id", "original_text", "rewrite_prompt", "rewritten_text", "source"]]
pub = part("runs/data/isplit/train.jsonl", "public").sample(1000, random_state=0)
hw = part("runs/data/handwritten.kept.jsonl", "handwritten")
syn = part("runs/data/synthetic.clean.kept.jsonl", "synthetic").sample(600, random_state=0)
hw2 = hw.assign(id=hw["id"] + "~2")  # a second copy: hand-written rows weighted 2x (R7)
r3 = part("runs/data/handwritten_r3.kept.jsonl", "handwritten_r3")
r3x2 = r3.assign(id=r3["id"] + "~2")
r4 = part("runs/data/handwritten_r4.kept.jsonl", "handwritten_r4")
r4x2 = r4.assign(id=r4["id"] + "~2")
r5 = part("runs/data/handwritten_r5.kept.jsonl", "handwritten_r5")
r5x2 = r5.assign(id=r5["id"] + "~2")
r6 = part("runs/data/handwritten_r6.kept.jsonl", "handwritten_r6")
r6x2 = r6.assign(id=r6["id"] + "~2")
r7 = part("runs/data/handwritten_r7.kept.jsonl", "handwritten_r7")
r7x2 = r7.assign(id=r7["id"] + "~2")
r8 = part("runs/data/handwritten_r8.kept.jsonl", "handwritten_r8")
r8x2 = r8.assign(id=r8["id"] + "~2")
mixes = {"mix_pub1k_hw": [pub, hw], "mix_pub1k_hw_syn600": [pub, hw, syn], "mix_pub1k_hw2_syn600": [pub, hw, hw2, syn],
         "mix_pub1k_hw2r3_syn600": [pub, hw, hw2, r3, r3x2, syn],
         "mix_pub1k_hw2r34_syn600": [pub, hw, hw2, r3, r3x2, r4, r4x2, syn],
         "mix_pub1k_hw2r345_syn600": [pub, hw, hw2, r3, r3x2, r4, r4x2, r5, r5x2, syn],
         "mix_pub1k_hw2r3456_syn600": [pub, hw, hw2, r3, r3x2, r4, r4x2, r5, r5x2, r6, r6x2, syn],
         "mix_pub1k_hw2r34567_syn600": [pub, hw, hw2, r3, r3x2, r4, r4x2, r5, r5x2, r6, r6x2, r7, r7x2, syn],
         "mix_pub1k_hw2r3-8_syn600": [pub, hw, hw2, r3, r3x2, r4, r4x2, r5, r5x2, r6, r6x2, r7, r7x2, r8, r8x2, syn]}
# F5: round 3 twice plus a replay sample of F2's rows (800 rows), to train the shipped adapter on
f2 = pd.concat(mixes["mix_pub1k_hw2_syn600"])
mixes["mix_r3x2_f2replay"] = [r3, r3x2, f2.sample(800 - 2 * len(r3), random_state=0)]
# F7: rounds 3 and 4 twice plus a replay sample of F2's rows (1,000 rows), to train the shipped adapter on
mixes["mix_r34x2_f2replay"] = [r3, r3x2, r4, r4x2, f2.sample(1000 - 2 * (len(r3) + len(r4)), random_state=0)]
for name, parts in mixes.items():
    m = pd.concat(parts).sample(frac=1, random_state=0)
    m.to_json(f"runs/data/{name}.jsonl", orient="records", lines=True, force_ascii=False)
    print(f"runs/data/{name}.jsonl: {len(m)} rows")
PY
