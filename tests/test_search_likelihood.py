"""Likelihood selection (`search.likelihood`): scores, margin, prototypes, and the CLI (tiny-random-mistral)."""

from __future__ import annotations

import json

import pytest

from prompt_recovery.cli import main
from prompt_recovery.data.rewriters import REQUEST_TEMPLATE, LocalRewriter
from prompt_recovery.errors import UserError
from prompt_recovery.inference.recover import Recoverer
from prompt_recovery.search.candidates import PROTOTYPES
from prompt_recovery.search.likelihood import LikelihoodScorer
from prompt_recovery.search.search import SearchOptions, SearchRecoverer

ORIGINAL = "The meeting moved to Thursday at three in room four. Bring the sales figures and be on time."


@pytest.fixture(scope="module")
def rewriter():
    from prompt_recovery import models

    return LocalRewriter(loaded=models.load("tiny-random-mistral", adapter="none", device="cpu", dtype="float32"),
                         max_new_tokens=12, temperature=0.0)


def manual_logp(rw, instruction, original, target_ids):
    """log p(target | request) from one unpadded forward pass."""
    import torch

    p = rw.tok(rw.render(REQUEST_TEMPLATE.format(prompt=instruction, text=original)),
               add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + target_ids])
    with torch.no_grad():
        logp = torch.log_softmax(rw.model(input_ids=ids).logits.float()[0, :-1], -1)
    return float(sum(logp[len(p) - 1 + k, t] for k, t in enumerate(target_ids)))


def test_scores_are_the_rewrites_log_probability_with_padding_and_end_token(rewriter):
    tok = rewriter.tok
    cands = ["Make it short.", "Rewrite this text in the voice of a pirate, with many words and a long tail."]
    short = "Thursday, room four."
    sc = LikelihoodScorer(rewriter, original_tokens=200, rewrite_tokens=48)
    scores, n = sc.scores(ORIGINAL, short, cands)
    target = tok(short, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]  # fits: the end token counts
    assert n == len(target)
    for c, s in zip(cands, scores):  # the shorter prompt is left-padded in the batch: same value as unpadded
        assert s == pytest.approx(manual_logp(rewriter, c, ORIGINAL, target), abs=1e-3)
        assert s < 0
    long_ids = tok(ORIGINAL, add_special_tokens=False)["input_ids"]
    sc_cut = LikelihoodScorer(rewriter, original_tokens=200, rewrite_tokens=5)
    s_cut, n_cut = sc_cut.scores(ORIGINAL, ORIGINAL, cands[:1])
    assert n_cut == 5  # cut: no end token
    assert s_cut[0] == pytest.approx(manual_logp(rewriter, cands[0], ORIGINAL, long_ids[:5]), abs=1e-3)


def test_a_smaller_budget_is_the_first_columns_of_a_larger_ones_token_scores(rewriter):
    cands = ["Make it short.", "Rewrite this text in the voice of a pirate, with many words and a long tail."]
    big = LikelihoodScorer(rewriter, original_tokens=200, rewrite_tokens=100).token_logps(ORIGINAL, ORIGINAL, cands)
    n_rewrite = len(rewriter.tok(ORIGINAL, add_special_tokens=False)["input_ids"])
    assert big.shape == (2, n_rewrite + 1)  # the rewrite fits in 100 tokens: its end token is scored too
    for k in (3, 7):  # cut below the rewrite's length: no end token, the same values column for column
        small, n = LikelihoodScorer(rewriter, original_tokens=200, rewrite_tokens=k).scores(ORIGINAL, ORIGINAL, cands)
        assert n == k
        assert small == pytest.approx([float(x) for x in big[:, :k].sum(-1)], abs=1e-4)
    full, n = LikelihoodScorer(rewriter, original_tokens=200, rewrite_tokens=100).scores(ORIGINAL, ORIGINAL, cands)
    assert full == pytest.approx([float(x) for x in big.sum(-1)], abs=1e-5) and n == n_rewrite + 1


def test_the_instruction_that_produced_the_rewrite_explains_it_best(rewriter):
    cands = ["Rewrite this as a pirate.", "Summarize this in one sentence.", "Turn this into a recipe."]
    sc = LikelihoodScorer(rewriter, rewrite_tokens=12)
    for right in range(3):  # the rewrite the (tiny) rewriter itself writes for the right instruction
        [observed] = rewriter.complete([REQUEST_TEMPLATE.format(prompt=cands[right], text=ORIGINAL)])
        order = [right] + [j for j in range(3) if j != right]  # the right one is never candidate 0 here ...
        order = order[1:2] + order[:1] + order[2:]
        [choice] = sc.choose([(ORIGINAL, observed)], [[cands[j] for j in order]])
        assert choice.instruction == cands[right]  # ... and still wins
        assert choice.scores[choice.index] == max(choice.scores)


class FixedScorer(LikelihoodScorer):
    def __init__(self, table, n, margin):
        self.table, self.n, self.margin, self.prior, self.prior_weight = table, n, margin, None, 1.0

    def scores(self, original, rewritten, candidates):
        return [self.table[c] for c in candidates], self.n


def test_margin_is_nats_per_scored_token_and_single_candidates_are_not_scored():
    table = {"model answer": -100.0, "Summarize this text.": -99.0, "other": -120.0}
    pair = [("a b c", "a")]
    assert FixedScorer(table, 10, 0.0).choose(pair, [list(table)])[0].index == 1
    assert FixedScorer(table, 10, 0.09).choose(pair, [list(table)])[0].index == 1  # 1 nat > 0.9
    assert FixedScorer(table, 10, 0.11).choose(pair, [list(table)])[0].index == 0  # 1 nat < 1.1
    [one] = FixedScorer({}, 10, 0.0).choose(pair, [["only"]])  # {} would raise if it were scored
    assert (one.index, one.instruction) == (0, "only")
    with pytest.raises(ValueError):
        FixedScorer(table, 10, 0.0).choose(pair * 2, [list(table)])


def test_prototypes_join_the_candidates_and_likelihood_picks_one(rewriter):
    base = Recoverer.load("tiny-random-mistral", adapter="none", max_new_tokens=6, batch_size=2,
                          backend="transformers")
    o = SearchOptions(prototypes=True, select="likelihood", likelihood_margin=0.0)
    sr = SearchRecoverer(base, o, scorer=LikelihoodScorer(rewriter, margin=0.0))
    pairs = [(ORIGINAL, "Arr, the council be moved to Thursday, ye dogs!"), (ORIGINAL, "Meeting moved.")]
    outs = sr.recover_batch(pairs)
    greedy = base.recover_batch(pairs)
    for out, g, d in zip(outs, greedy, sr.last_details):
        assert d["candidates"][0] == g and set(PROTOTYPES) <= set(d["candidates"])
        assert len(d["likelihood_scores"]) == len(d["candidates"])
        assert out == d["candidates"][d["chosen"]]
        assert d["likelihood_scores"][d["chosen"]] == max(d["likelihood_scores"])  # margin 0: the best one
    assert "17 family prototypes" in sr.describe() and "select likelihood" in sr.describe()


def test_likelihood_with_an_http_rewriter_is_refused_in_one_line():
    from prompt_recovery.search.search import check_options

    with pytest.raises(UserError, match="--select likelihood .* local"):
        check_options(SearchOptions(select="likelihood", replay_rewriter="http", replay_endpoint="http://x/v1"))


def test_recover_examples_json_shows_the_likelihood_evidence(capsys):
    rc = main(["recover", "--examples", "--model", "tiny-random-mistral", "--adapter", "none", "--max-new-tokens",
               "4", "--select", "likelihood", "--prototypes", "--replay-model", "tiny-random-mistral", "--json"])
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["id"] for r in rows] == ["pirate", "haiku", "formal", "summary", "child"]
    for r in rows:
        assert r["rewrite_prompt"] == r["candidates"][r["chosen"]]
        assert len(r["likelihood_scores"]) == len(r["candidates"]) == len(PROTOTYPES) + 1
