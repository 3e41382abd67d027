"""Replay verification and candidate selection with a deterministic fake rewriter (no LLM)."""

from __future__ import annotations

import math

import pytest

from prompt_recovery.errors import UserError
from prompt_recovery.data.rewriters import REQUEST_TEMPLATE, make_rewriter
from prompt_recovery.search.replay import Replayer
from prompt_recovery.search.search import mbr_choice


TRANSFORMS = {
    "Rewrite this as a pirate.": lambda t: "Arr matey! " + t.replace("the", "th'") + " Yo ho ho!",
    "Summarize this in one sentence.": lambda t: t.split(".")[0] + ".",
    "Turn this into a cooking recipe.": lambda t: "Ingredients: two eggs, flour, butter. Bake for 20 minutes at 180 degrees.",
    "Translate this into French.": lambda t: "Le chat est sur le tapis et il dort toute la journée.",
}


class FakeRewriter:
    """Implements the rewriter interface (`name`, `complete`); answers by a fixed rule per instruction."""

    name = "fake"

    def __init__(self):
        self.messages: list[str] = []

    def complete(self, messages):
        out = []
        for m in messages:
            self.messages.append(m)
            prompt, text = m.split("\n\n", 1)
            out.append(TRANSFORMS.get(prompt, lambda t: "")(text))
        return out


ORIGINAL = "The ship left the harbour at dawn. The crew sang loudly while the captain slept."


@pytest.mark.parametrize("right", [1, 2, 3])
def test_replay_picks_the_candidate_that_reproduces_the_rewrite(minilm, right):
    cands = list(TRANSFORMS)
    observed = TRANSFORMS[cands[right]](ORIGINAL)
    rw = FakeRewriter()
    [choice] = Replayer(rw, minilm).choose([(ORIGINAL, observed)], [cands])
    assert choice.index == right and choice.instruction == cands[right]
    assert choice.scores[right] == pytest.approx(1.0, abs=1e-5)  # exact reproduction
    assert all(s < 0.999 for j, s in enumerate(choice.scores) if j != right)
    # every candidate was replayed with the generation request format, on the original text
    assert rw.messages == [REQUEST_TEMPLATE.format(prompt=c, text=ORIGINAL) for c in cands]
    assert choice.replays[right] == observed


def test_margin_keeps_candidate_zero_and_empty_replays_never_win(minilm):
    cands = ["Delete everything.", "Rewrite this as a pirate.", "Summarize this in one sentence."]
    observed = "Arr! The ship left at dawn, yo ho."  # close to the pirate replay, not identical
    rw = FakeRewriter()
    [c] = Replayer(rw, minilm).choose([(ORIGINAL, observed)], [cands])
    assert c.scores[0] == -1.0  # "Delete everything." replays as "" and can never win
    assert c.index == 1
    [kept] = Replayer(rw, minilm, margin=5.0).choose([(ORIGINAL, observed)], [cands[1:]])
    assert kept.index == 0  # the other candidate does not beat candidate 0 by a margin of 5


def test_single_candidate_rows_are_not_replayed(minilm):
    rw = FakeRewriter()
    out = Replayer(rw, minilm).choose([(ORIGINAL, "x"), (ORIGINAL, "Arr matey!")],
                                      [["Only one."], ["Only one.", "Rewrite this as a pirate."]])
    assert out[0].instruction == "Only one." and math.isnan(out[0].scores[0])
    assert out[1].index == 1
    assert len(rw.messages) == 2  # only the second row's two candidates


def test_rewriter_options_fail_clearly():
    with pytest.raises(UserError, match="--replay-endpoint"):
        make_rewriter("http", purpose="replay")
    with pytest.raises(UserError, match="must be an http"):
        make_rewriter("http", endpoint="localhost:8000", purpose="replay")
    with pytest.raises(UserError, match="unknown replay rewriter"):
        make_rewriter("carrier-pigeon", purpose="replay")
    with pytest.raises(UserError, match="{prompt} and {text}"):
        Replayer(FakeRewriter(), None, template="{prompt}")


def test_http_rewriter_is_deterministic_and_points_at_the_endpoint():
    rw = make_rewriter("http", endpoint="http://127.0.0.1:9/v1/", api_model="google/gemma-7b-it", max_new_tokens=50)
    try:
        assert rw.url == "http://127.0.0.1:9/v1/chat/completions"
        assert rw.temperature == 0.0 and rw.max_new_tokens == 50 and rw.name == "http:google/gemma-7b-it"
    finally:
        rw.close()


def test_mbr_choice_picks_the_consensus_candidate(minilm):
    cands = ["Convert this into a poem.", "Tell the weather forecast for Paris.", "Rewrite this text as a poem.",
             "Turn this into a short poem."]
    assert mbr_choice(cands, minilm) in (0, 2, 3)
    assert mbr_choice(["Tell the weather forecast for Paris.", "Rewrite it as a poem.", "Make it a poem."],
                      minilm) in (1, 2)
    assert mbr_choice(["a", "b"], minilm) == 0  # two candidates are symmetric: keep the greedy one
