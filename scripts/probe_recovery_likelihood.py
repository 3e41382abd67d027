"""Probe: how likely the recovery model itself finds each candidate instruction, log p_rec(c | original, rewrite).

    python scripts/probe_recovery_likelihood.py --scores runs/probe/lik_suite.jsonl --pairs suite \
        -o runs/probe/rec_suite.jsonl

Reads the candidates of a `probe_rewrite_likelihood.py` score file (the model's answer, then the prototypes) and
adds, per candidate, the summed log-probability of its target tokens (`prompting.target_ids`: the instruction and
the end token) after the recovery model's own prompt for the pair (`prompting.prompt_ids`: same format, length
hint and token budget as `predict`). The prompt is run once per row; the candidates reuse its key/value cache.
Written for docs/quality.md (session 9): does the recovery model's own belief, added to the rewriter's
log p(rewrite | c, original), choose families better (a noisy-channel combination)?
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scores", required=True, help="score file of probe_rewrite_likelihood.py")
    p.add_argument("--pairs", required=True, help="the pairs file (or `suite`)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--adapter", default="default")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default="0/1")
    a = p.parse_args(argv)

    import pandas as pd
    import torch
    from tqdm import tqdm

    from prompt_recovery.inference.recover import Recoverer
    from prompt_recovery.prompting import target_ids
    from prompt_recovery.scoring import suite

    torch.set_num_threads(a.threads)
    rec = Recoverer.load(a.model, a.adapter, backend="transformers", dtype="float32", device="cpu")
    tok, model, fmt = rec.tokenizer, rec.loaded.model, rec.prompt_format
    d = pd.read_json(suite.resolve(a.pairs), lines=True, dtype={"id": str}).set_index("id")
    rows = [json.loads(line) for line in open(a.scores)]
    k, n = map(int, a.shard.split("/"))
    rows = rows[k::n]
    done = {json.loads(line)["id"] for line in open(a.output)} if os.path.exists(a.output) else set()
    with open(a.output, "a") as f:
        for r in tqdm(rows):
            if r["id"] in done:
                continue
            pair = d.loc[r["id"]]
            prompt = rec.prompt_ids(pair["original_text"], pair["rewritten_text"])
            targets = [target_ids(tok, c, fmt) for c in r["candidates"]]
            with torch.no_grad():
                out = model(input_ids=torch.tensor([prompt]), use_cache=True)
                first = torch.log_softmax(out.logits[0, -1].float(), -1)  # the first target token's distribution
                cache = out.past_key_values
                cache.batch_repeat_interleave(len(targets))
                t = max(map(len, targets))
                ids = torch.full((len(targets), t), tok.pad_token_id or 0, dtype=torch.long)
                for i, tg in enumerate(targets):
                    ids[i, :len(tg)] = torch.tensor(tg)
                mask = torch.ones((len(targets), len(prompt) + t), dtype=torch.long)
                for i, tg in enumerate(targets):  # right padding: padded positions are never read
                    mask[i, len(prompt) + len(tg):] = 0
                pos = torch.arange(len(prompt), len(prompt) + t)[None].expand(len(targets), -1)
                logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache).logits
                logp = torch.log_softmax(logits.float(), -1)
            scores = []
            for i, tg in enumerate(targets):
                s = float(first[tg[0]]) + sum(float(logp[i, j - 1, tg[j]]) for j in range(1, len(tg)))
                scores.append(s)
            f.write(json.dumps({"id": r["id"], "candidates": r["candidates"], "rec_scores": scores,
                                "target_lens": [len(tg) for tg in targets]}) + "\n")
            f.flush()


if __name__ == "__main__":
    sys.exit(main())
