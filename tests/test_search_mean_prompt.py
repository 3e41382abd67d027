"""The mean-prompt optimiser on a toy set (MiniLM), and its command."""

from __future__ import annotations

import json

import pytest

from prompt_recovery.cli import main
from prompt_recovery.search.mean_prompt import as_text, build_vocab, mean_scs, optimise

TOY = ["Rewrite this text as a poem.", "Turn the text into a rhyming poem.", "Make this text more formal.",
       "Rewrite the text in a formal tone.", "Rewrite this story as a pirate would tell it."]


def test_vocab_and_text_form():
    v = build_vocab(TOY, 5)
    assert v[:4] == ["text", "a", "rewrite", "this"] and len(v) == 5  # counts 4, 4, 3, 3; ties: first seen
    assert as_text(["rewrite", "poem"]) == "Rewrite poem." and as_text([]) == ""


def test_optimiser_increases_its_objective(minilm):
    init = "Banana."
    res = optimise(TOY, minilm, vocab=build_vocab(TOY, 12), beam=2, max_words=4, init=init)
    T = minilm.encode(TOY)
    start = float(mean_scs(minilm.encode([init]), T)[0])
    found = float(mean_scs(minilm.encode([res.prompt]), T)[0])
    assert res.init_score == pytest.approx(start, abs=1e-6)
    assert found == pytest.approx(res.score, abs=1e-5)  # the reported score is the objective of the prompt
    assert found > start + 0.05
    scores = [h["score"] for h in res.history]
    assert scores[1] > scores[0] and res.score == pytest.approx(max(scores[:-1] + [res.score]), abs=1e-6)
    # better than every single vocabulary word alone
    assert found >= max(mean_scs(minilm.encode([as_text([w]) for w in build_vocab(TOY, 12)]), T))


def test_command_writes_the_prompt_and_report(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"rewrite_prompt": t}) + "\n" for t in TOY))
    out = tmp_path / "mp.txt"
    assert main(["mean-prompt", str(train), "-o", str(out), "--vocab-size", "8", "--beam", "2",
                 "--max-words", "3", "--no-progress"]) == 0
    prompt = out.read_text().strip()
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["prompt"] == prompt and rep["n_train"] == 5 and 1 <= len(prompt.split()) <= 3
    assert rep["scores"]["train/all-MiniLM-L6-v2"]["mean_prompt"] > 0.1
    assert main(["mean-prompt", str(train), "-o", str(tmp_path / "x.json")]) == 2
