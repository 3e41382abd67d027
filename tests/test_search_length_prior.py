"""The length prior (`search.length_prior`): fitting, smoothing, the file, and how it moves the likelihood choice."""

from __future__ import annotations

import json
import math

import pytest

from prompt_recovery.errors import UserError
from prompt_recovery.search.length_prior import BIN, N_BINS, LengthPrior, bin_of, log_ratio
from prompt_recovery.search.likelihood import LikelihoodScorer, with_prior

LONG = " ".join(f"word{i}" for i in range(60))  # a 60-word original


def row(instruction, n_words, original=LONG):
    return {"original_text": original, "rewrite_prompt": instruction,
            "rewritten_text": " ".join(["w"] * n_words)}


def toy_rows():
    # summaries a quarter of the original, expansions four times it, tone changes about the same length
    return ([row("Summarize this text.", 15 + i % 3) for i in range(20)]
            + [row("Expand this with more detail.", 240 + i) for i in range(20)]
            + [row("Rewrite this in a formal tone.", 58 + i % 5) for i in range(20)])


def test_log_ratio_and_bins():
    assert log_ratio("a b c", "a") == pytest.approx(math.log(2 / 4))
    assert log_ratio("", "") == 0.0
    assert bin_of(0.0) == N_BINS // 2 and bin_of(-BIN / 2) == N_BINS // 2 - 1
    assert bin_of(-50.0) == 0 and bin_of(50.0) == N_BINS - 1  # beyond the range: the end bins


def test_fit_counts_rows_per_category_and_bin():
    p = LengthPrior.fit(toy_rows(), source="toy")
    assert sum(p.counts["summarise"]) == sum(p.counts["expand"]) == sum(p.counts["change_tone"]) == 20
    assert sum(p.counts["change_style"]) == 0
    assert p.counts["summarise"][bin_of(log_ratio(LONG, " ".join(["w"] * 15)))] > 0


def test_logp_prefers_the_category_that_matches_the_length_change():
    p = LengthPrior.fit(toy_rows())
    short, long_, same = (" ".join(["w"] * n) for n in (16, 250, 60))
    s, e, t = "Summarize this text.", "Expand this text with more details.", "Make it more formal."
    assert p.logp(LONG, short, s) > max(p.logp(LONG, short, t), p.logp(LONG, short, e))
    assert p.logp(LONG, long_, e) > p.logp(LONG, long_, s)
    assert p.logp(LONG, same, t) > max(p.logp(LONG, same, s), p.logp(LONG, same, e))
    # a category without rows gets the pooled shape: finite, and between the specialists at a tone-like length
    style = p.logp(LONG, same, "Rewrite this as a poem.")
    assert math.isfinite(style) and p.logp(LONG, same, s) < style < p.logp(LONG, same, t)
    # each category's density integrates to 1 over the bins
    for cat in ("summarise", "change_style"):
        assert sum(math.exp(v) * BIN for v in p._logp[cat]) == pytest.approx(1.0)


def test_save_load_round_trip_and_bad_files(tmp_path):
    p = LengthPrior.fit(toy_rows(), source="toy")
    path = p.save(tmp_path / "prior.json")
    q = LengthPrior.load(path)
    assert q.counts == p.counts and q.source == "toy"
    assert q.logp(LONG, "a b", "Summarize it.") == p.logp(LONG, "a b", "Summarize it.")
    d = json.loads(path.read_text())
    d["bin"] = 0.5
    (tmp_path / "other.json").write_text(json.dumps(d))
    with pytest.raises(UserError, match="other bins"):
        LengthPrior.load(tmp_path / "other.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        LengthPrior.load(tmp_path / "bad.json")
    with pytest.raises(UserError, match="no rows"):
        LengthPrior.fit([])


def test_the_shipped_table_tells_summaries_and_expansions_from_simplifying():
    p = LengthPrior.load()
    assert sum(map(sum, p.counts.values())) > 1000 and p.source
    summary, expansion = " ".join(["w"] * 18), " ".join(["w"] * 300)
    simplify = "Rewrite this text so that a young child can understand it."
    assert p.logp(LONG, summary, "Summarize this text.") > p.logp(LONG, summary, simplify) + 1.0
    assert p.logp(LONG, expansion, "Expand this text with more details.") > p.logp(LONG, expansion, simplify) + 1.0


class FixedScorer(LikelihoodScorer):
    """Fixed language-model scores: only the prior differs between candidates."""

    def __init__(self, table, n, margin, prior=None, weight=1.0):
        self.table, self.n, self.margin, self.prior, self.prior_weight = table, n, margin, prior, weight

    def scores(self, original, rewritten, candidates):
        return [self.table[c] for c in candidates], self.n


def test_the_prior_moves_the_choice_only_when_the_length_speaks():
    p = LengthPrior.fit(toy_rows())
    cands = ["Rewrite this as a scientific study.", "Summarize this text.", "Expand this text with more details.",
             "Rewrite this text in a formal tone."]
    table = dict.fromkeys(cands, -100.0)  # the rewrite's first tokens are equally likely under each
    pairs = [(LONG, " ".join(["w"] * 16)), (LONG, " ".join(["w"] * 250)), (LONG, " ".join(["w"] * 60))]
    assert [c.index for c in FixedScorer(table, 20, 0.0).choose(pairs, [cands] * 3)] == [0, 0, 0]  # no prior: ties
    picked = [c.instruction for c in FixedScorer(table, 20, 0.0, prior=p).choose(pairs, [cands] * 3)]
    assert picked == ["Summarize this text.", "Expand this text with more details.",
                      "Rewrite this text in a formal tone."]
    # a margin larger than the prior's evidence keeps the model's answer
    big = max(c.scores[c.index] - c.scores[0] for c in FixedScorer(table, 20, 0.0, prior=p).choose(pairs, [cands] * 3))
    assert [c.index for c in FixedScorer(table, 20, big / 20 + 0.01, prior=p).choose(pairs, [cands] * 3)] == [0, 0, 0]
    # the scores the choice reports include the prior, weighted
    [half] = FixedScorer(table, 20, 0.0, prior=p, weight=0.5).choose(pairs[:1], [cands])
    assert half.scores == pytest.approx(with_prior([-100.0] * 4, *pairs[0], cands, p, 0.5))
    assert half.scores[1] == pytest.approx(-100.0 + 0.5 * p.logp(*pairs[0], cands[1]))
    assert with_prior([-1.0, -2.0], "a", "b", ["x", "y"], None) == [-1.0, -2.0]


def test_length_prior_option_adds_the_shipped_prior_to_the_likelihood_scores(tiny_judge):
    from prompt_recovery.search.search import SearchOptions, SearchRecoverer

    rw, base = tiny_judge
    pair = [(LONG, "A short summary of it.")]
    plain = SearchRecoverer(base, SearchOptions(prototypes=True, select="likelihood", length_prior=False),
                            scorer=LikelihoodScorer(rw, rewrite_tokens=5, margin=0.0))
    with_opt = SearchRecoverer(base, SearchOptions(prototypes=True, select="likelihood", length_prior=True,
                                                   length_prior_weight=2.0, likelihood_tokens=5))
    with_opt._scorer = None  # built from the options, as `recover --length-prior` does
    with_opt.o.replay_model = "tiny-random-mistral"
    plain.recover_batch(pair)
    with_opt.recover_batch(pair)
    a, b = plain.last_details[0], with_opt.last_details[0]
    assert a["candidates"] == b["candidates"]
    prior = LengthPrior.load()
    expected = [s + 2.0 * prior.logp(*pair[0], c) for s, c in zip(a["likelihood_scores"], a["candidates"])]
    assert b["likelihood_scores"] == pytest.approx(expected, abs=1e-3)
    assert "length prior" in with_opt.describe() and "length prior" not in plain.describe()
    assert with_opt.scorer.rewrite_tokens == 5  # --likelihood-tokens reaches the scorer


def test_likelihood_tokens_must_be_positive():
    from prompt_recovery.search.search import SearchOptions, check_options

    with pytest.raises(UserError, match="--likelihood-tokens"):
        check_options(SearchOptions(likelihood_tokens=0))
