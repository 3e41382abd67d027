"""Likelihood selection: keep the candidate instruction under which the rewriter finds the observed rewrite most likely.

    prompt-recovery recover --examples --select likelihood --prototypes --json      # see the scores
    prompt-recovery predict dev.jsonl -o pred.csv --select likelihood --prototypes --likelihood-margin 0.02

For a pair (original o, rewrite r) and each candidate instruction c, the rewriter model (``--replay-model``: the
base model of a preset, no adapter; SmolLM2-135M-Instruct by default) is given the request ``generate`` sends,
``REQUEST_TEMPLATE.format(prompt=c, text=o)`` in its chat layout, with o cut to ``original_tokens`` tokens, and the
score is log p(r | c, o): the summed log-probability of the first ``rewrite_tokens`` tokens of r, teacher-forced
(no generation), plus the end-of-sequence token when r fits in them (a rewrite that ends early is evidence for a
summary or a headline). Every candidate of a pair scores the same tokens, so the scores compare directly; the answer
is the one that best *explains the rewrite*, which is what a recovery model trained to name genres does not learn.
With a length prior (`search.length_prior`; on by default in `SearchOptions`, ``--no-length-prior``) each score adds
``prior_weight`` x log p(length ratio | the candidate's category), the evidence of the whole rewrite's length that the
first tokens do not carry. With a family prior (`search.family_prior`, ``--family-prior``) each score adds
``family_prior_weight`` x log p(the candidate's category | the pair), a classifier's reading of the pair as a whole.

Candidate 0 (the recovery model's greedy answer) is kept unless another beats it by more than ``margin`` nats per
scored token. With ``--prototypes`` the candidates include `candidates.PROTOTYPES` (one generic instruction per
instruction family), so an operation the model never names (summarise, simplify, a change of tone) can still be
chosen. Measured in docs/quality.md (sessions 7-10).
"""

from __future__ import annotations

from typing import Sequence

from prompt_recovery.data.rewriters import REQUEST_TEMPLATE
from prompt_recovery.search.replay import Choice

REWRITE_TOKENS = 96  # rewrite tokens scored per candidate (`--likelihood-tokens`; docs/quality.md, session 10)


def pick(scores: Sequence[float], n: int, margin: float) -> int:
    """The chosen index of scored candidates: the best one after candidate 0 if it beats candidate 0 by more than
    `margin` nats per scored token (`n` tokens), else 0."""
    best = max(range(1, len(scores)), key=scores.__getitem__)
    return best if scores[best] > scores[0] + margin * n else 0


def with_prior(scores: Sequence[float], original: str, rewritten: str, candidates: Sequence[str], prior,
               weight: float = 1.0) -> list[float]:
    """`scores` plus `weight` x a prior's log-probability of each candidate given the pair (``prior.logp(original,
    rewritten, candidate)``: the length prior's or the family prior's); unchanged without a prior."""
    if prior is None or not weight:
        return list(scores)
    return [s + weight * prior.logp(original, rewritten, c) for s, c in zip(scores, candidates)]


class LikelihoodScorer:
    """Scores candidates with a `data.rewriters.LocalRewriter` (its loaded model, tokenizer and chat rendering)."""

    prior = family_prior = None  # no priors unless given
    prior_weight = family_prior_weight = 1.0

    def __init__(self, rewriter, original_tokens: int = 96, rewrite_tokens: int = REWRITE_TOKENS, margin: float = 0.0,
                 template: str = REQUEST_TEMPLATE, prior=None, prior_weight: float = 1.0, family_prior=None,
                 family_prior_weight: float = 1.0):
        self.rewriter, self.template, self.margin = rewriter, template, margin
        self.prior, self.prior_weight = prior, prior_weight  # a `length_prior.LengthPrior` or None
        self.family_prior, self.family_prior_weight = family_prior, family_prior_weight  # a `family_prior.FamilyPrior`
        self.original_tokens, self.rewrite_tokens = original_tokens, rewrite_tokens
        self.model, self.tok = rewriter.loaded.model, rewriter.loaded.tokenizer

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def scores(self, original: str, rewritten: str, candidates: Sequence[str]) -> tuple[list[float], int]:
        """(log p(rewrite | c, original) for each candidate c, the number of scored tokens)."""
        logp = self.token_logps(original, rewritten, candidates)
        return [float(x) for x in logp.sum(-1)], logp.shape[1]

    def token_logps(self, original: str, rewritten: str, candidates: Sequence[str]):
        """The log-probability of each scored token (a tensor, candidates x scored tokens); `scores` sums it. The
        first k columns are what a budget of k < ``rewrite_tokens`` scores (plus its end token if r fits in k)."""
        import torch

        o = self.tok.decode(self._ids(original)[:self.original_tokens])
        r_ids = self._ids(rewritten)
        target = r_ids[:self.rewrite_tokens]
        if len(r_ids) <= self.rewrite_tokens and self.tok.eos_token_id is not None:
            target = target + [self.tok.eos_token_id]
        seqs = [self._ids(self.rewriter.render(self.template.format(prompt=c, text=o))) + target for c in candidates]
        n, t = max(map(len, seqs)), len(target)
        ids = torch.full((len(seqs), n), self.tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):  # left padding: every row's rewrite tokens are its last t positions
            ids[i, n - len(s):] = torch.tensor(s)
            mask[i, n - len(s):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # positions as without padding
        ids, mask, pos = ids.to(self.model.device), mask.to(self.model.device), pos.to(self.model.device)
        with torch.no_grad():  # logits of the last t + 1 positions only (the vocabulary projection is large)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=t + 1).logits
        return torch.log_softmax(logits[:, :t].float(), dim=-1).gather(-1, ids[:, n - t:, None])[..., 0]

    def choose(self, pairs: Sequence[tuple[str, str]], candidates: Sequence[Sequence[str]],
               progress: bool = False) -> list[Choice]:
        """One `Choice` per pair (scores in nats); a pair with one candidate is not scored."""
        from tqdm.auto import tqdm

        if len(pairs) != len(candidates):
            raise ValueError(f"{len(candidates)} candidate lists for {len(pairs)} pairs")
        out = []
        for (o, r), cands in tqdm(list(zip(pairs, candidates)), desc="likelihood", unit="row", disable=not progress):
            cands = list(cands)
            if len(cands) < 2:
                out.append(Choice(cands[0], 0, cands, [0.0]))
                continue
            s, n = self.scores(o, r, cands)
            s = with_prior(s, o, r, cands, self.prior, self.prior_weight)
            s = with_prior(s, o, r, cands, self.family_prior, self.family_prior_weight)
            i = pick(s, n, self.margin)
            out.append(Choice(cands[i], i, cands, s))
        return out
