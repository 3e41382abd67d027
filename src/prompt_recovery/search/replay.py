"""Replay verification: rewrite the original with each candidate instruction and keep the one that reproduces the rewrite.

    prompt-recovery predict dev.jsonl -o pred.csv --candidates 4 --select replay                 # local rewriter
    prompt-recovery predict dev.jsonl -o pred.csv --candidates 4 --select replay \\
        --replay-rewriter http --replay-endpoint http://127.0.0.1:8001/v1 --replay-api-model google/gemma-7b-it

For every row and candidate instruction c, the rewriter is sent the message
``REQUEST_TEMPLATE.format(prompt=c, text=original)`` (`data.rewriters.REQUEST_TEMPLATE`, the message
`generate` sends when making training data) and its answer, the *replay*, is compared with the observed rewritten
text by the cosine of their sentence embeddings (MiniLM by default). The candidate whose
replay is most similar wins; a tie (or a win by less than ``margin`` over candidate 0)
keeps the earlier candidate, so candidate 0 – the plain greedy prediction – is kept unless
replay evidence clearly favours another.

Rewriters are pluggable: any object with ``name`` and ``complete(messages) -> list[str]``
(built by `prompt_recovery.data.rewriters.make_rewriter`): ``local`` (a `LocalRewriter`: the base model of a
preset through `models.load`, its chat template, greedy decoding) or ``http`` (an
`HTTPRewriter` for an OpenAI-compatible server, e.g. the real rewriter Gemma-7b-it under
vLLM – the way to audit a known model). Replays are cut at ``max_new_tokens`` tokens; the
beginning of a rewrite is enough to tell instructions apart and keeps replay affordable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from prompt_recovery.data.rewriters import REQUEST_TEMPLATE
from prompt_recovery.errors import UserError

@dataclass
class Choice:
    """The selected candidate of one row with the evidence for it."""

    instruction: str
    index: int
    candidates: list[str]
    scores: list[float]
    replays: list[str] = field(default_factory=list)


class Replayer:
    def __init__(self, rewriter, embedder, template: str = REQUEST_TEMPLATE, margin: float = 0.0):
        if "{prompt}" not in template or "{text}" not in template:
            raise UserError("the replay request template must contain {prompt} and {text}")
        self.rewriter, self.embedder, self.template, self.margin = rewriter, embedder, template, margin

    def message(self, instruction: str, original: str) -> str:
        return self.template.format(prompt=instruction, text=original)

    def choose(self, pairs: Sequence[tuple[str, str]], candidates: Sequence[Sequence[str]],
               progress: bool = False) -> list[Choice]:
        """One `Choice` per pair; rows with a single candidate are not replayed."""
        import numpy as np
        from tqdm.auto import tqdm

        if len(pairs) != len(candidates):
            raise ValueError(f"{len(candidates)} candidate lists for {len(pairs)} pairs")
        jobs = [(i, j) for i, cands in enumerate(candidates) if len(cands) > 1 for j in range(len(cands))]
        replays: dict[tuple[int, int], str] = {}
        step = 32
        bar = tqdm(total=len(jobs), unit="replay", desc="replay", disable=not progress)
        for s in range(0, len(jobs), step):
            chunk = jobs[s:s + step]
            outs = self.rewriter.complete([self.message(candidates[i][j], pairs[i][0]) for i, j in chunk])
            if len(outs) != len(chunk):
                raise UserError(f"replay rewriter {getattr(self.rewriter, 'name', '?')} returned {len(outs)} answers "
                                f"for {len(chunk)} messages")
            replays.update(zip(chunk, (str(o or "") for o in outs)))
            bar.update(len(chunk))
        bar.close()
        out = []
        for i, cands in enumerate(candidates):
            cands = list(cands)
            if len(cands) <= 1:
                out.append(Choice(cands[0], 0, cands, [float("nan")] * len(cands)))
                continue
            reps = [replays[(i, j)] for j in range(len(cands))]
            target = self.embedder.encode([pairs[i][1]])
            vecs = self.embedder.encode([r if r.strip() else " " for r in reps])
            sims = [float(x) for x in (vecs @ target.T).ravel()]
            sims = [s if r.strip() else -1.0 for s, r in zip(sims, reps)]  # an empty replay never wins
            best = int(np.argmax(sims))  # first maximum: earlier candidates win ties
            if best != 0 and sims[best] < sims[0] + self.margin:
                best = 0
            out.append(Choice(cands[best], best, cands, sims, reps))
        return out
