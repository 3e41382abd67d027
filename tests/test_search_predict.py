"""Search options compose with predict's row contract (tiny-random-mistral; no real model)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prompt_recovery.inference import predict as pr
from prompt_recovery.search.candidates import PromptBank, dedupe, model_candidates
from prompt_recovery.cli import main
from prompt_recovery.errors import UserError
from prompt_recovery.prompting import DEFAULT_INSTRUCTION
from prompt_recovery.inference.recover import Recoverer
from prompt_recovery.search.search import SearchOptions, SearchRecoverer

FIX = Path(__file__).parent / "fixtures"
PAIRS = FIX / "predict_pairs.csv"
BANK = FIX / "search_bank.csv"
TINY = ["--model", "tiny-random-mistral", "--adapter", "none", "--max-new-tokens", "6", "--batch-size", "2",
        "--no-progress"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_RECOVERY_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny():
    return Recoverer.load("tiny-random-mistral", adapter="none", max_new_tokens=6, batch_size=2,
                          backend="transformers")


def read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_candidates_suffix_and_replay_keep_the_row_contract(tmp_path):
    plain, first, suff, rep = (tmp_path / f"{n}.csv" for n in ("plain", "first", "suffix", "replay"))
    assert main(["predict", str(PAIRS), "-o", str(plain), *TINY]) == 0
    assert main(["predict", str(PAIRS), "-o", str(first), *TINY, "--candidates", "3", "--select", "first"]) == 0
    (tmp_path / "mp.txt").write_text("Rewrite   this text\nin a new style.\n")
    assert main(["predict", str(PAIRS), "-o", str(suff), *TINY, "--suffix-file", str(tmp_path / "mp.txt")]) == 0
    assert main(["predict", str(PAIRS), "-o", str(rep), *TINY, "--candidates", "2", "--bank", str(BANK),
                 "--bank-k", "1", "--select", "replay", "--replay-model", "tiny-random-mistral",
                 "--replay-max-new-tokens", "4"]) == 0
    p, f, s, r = (read(x) for x in (plain, first, suff, rep))
    ids = ["p1", "p2", "p3", "p4", "p5"]
    for df in (p, f, s, r):
        assert list(df.columns) == ["id", "rewrite_prompt"] and list(df["id"]) == ids
        assert all(x.strip() for x in df["rewrite_prompt"])
        assert df["rewrite_prompt"][1] == DEFAULT_INSTRUCTION == df["rewrite_prompt"][2]  # empty-text rows
    good = [0, 3, 4]
    assert [f["rewrite_prompt"][i] for i in good] == [p["rewrite_prompt"][i] for i in good]  # candidate 0 = plain
    assert [s["rewrite_prompt"][i] for i in good] == [p["rewrite_prompt"][i] + " Rewrite this text in a new style."
                                                      for i in good]
    for path in (plain, first, suff, rep):
        assert not pr.sidecar_path(path).exists()


def test_search_recoverer_chooses_among_its_candidates(tiny, minilm):
    pairs = [("The cat sat on the mat.", "Arr, the cat be on the mat, matey!"),
             ("Please send the files.", "Kindly forward the documents.")]
    o = SearchOptions(candidates=3, bank=str(BANK), bank_k=2, select="mbr")
    sr = SearchRecoverer(tiny, o, embedder=minilm)
    outs = sr.recover_batch(pairs)
    greedy = tiny.recover_batch(pairs)
    for out, g, d in zip(outs, greedy, sr.last_details):
        assert d["candidates"][0] == g  # greedy first
        assert 2 <= len(d["candidates"]) <= 5 and out == d["candidates"][d["chosen"]]
    # the bank neighbours of the pirate pair are the two pirate prompts
    assert set(sr.last_details[0]["candidates"][-2:]) <= {"Rewrite this as a pirate would say it.",
                                                          "Make it sound like a pirate."} | set(greedy)


def test_search_recoverer_rejects_an_empty_text_before_any_work(tiny, minilm):
    sr = SearchRecoverer(tiny, SearchOptions(candidates=3, select="mbr"), embedder=minilm)
    with pytest.raises(UserError, match="the rewritten text is empty"):
        sr.recover_batch([("Fine text.", "Also fine."), ("Fine text.", "   ")])
    assert sr.last_details == []  # nothing chosen: the check ran before candidates were generated


def test_model_candidates_are_distinct_with_greedy_first(tiny):
    pairs = [("The report is due Friday.", "Roses are red, the report is due.")]
    [c] = model_candidates(tiny, pairs, 4)
    assert c[0] == tiny.recover(*pairs[0]) and 1 <= len(c) <= 4 and len(dedupe(c)) == len(c)
    [s] = model_candidates(tiny, pairs, 3, method="sample", seed=1)
    assert s[0] == c[0] and len(s) <= 3
    assert model_candidates(tiny, pairs, 1) == [[c[0]]]


def test_bank_retrieval_by_pair_and_by_prompt(minilm):
    bank = PromptBank.load(str(BANK), minilm)
    assert bank.kind == "pairs" and len(bank.prompts) == 5
    near = bank.nearest([("The dog ran home.", "Arr, the dog be runnin' home, matey! Yo ho!")], 2)
    assert set(near[0]) == {"Rewrite this as a pirate would say it.", "Make it sound like a pirate."}
    self_row = [("Please send the files.", "Kindly forward the documents at your earliest convenience.")]
    assert bank.nearest(self_row, 1)[0] == ["Make this more formal."]
    assert bank.nearest(self_row, 1, exclude_self=True)[0] != ["Make this more formal."]
    cached = PromptBank.load(str(BANK), minilm)  # second load reads the cached pair embeddings
    assert (cached.keys == bank.keys).all()
    txt = FIX / "search_prompts.txt"
    plain = PromptBank.load(str(txt), minilm)
    assert plain.kind == "prompts"
    assert plain.nearest([("a", "b")], 1, greedy=["Write it as a poem."])[0] == ["Turn this into a short poem."]


def test_fingerprint_changes_only_when_search_options_are_set(tmp_path):
    df = pr.read_pairs(str(PAIRS))
    base = pr.PredictConfig(input=str(PAIRS), output=str(tmp_path / "o.csv"))
    same = pr.PredictConfig(input=str(PAIRS), output=str(tmp_path / "o.csv"), candidates=1, select="mbr")
    other = pr.PredictConfig(input=str(PAIRS), output=str(tmp_path / "o.csv"), candidates=3)
    assert pr.fingerprint(df, base) == pr.fingerprint(df, same) != pr.fingerprint(df, other)


def test_bad_search_options_fail_with_one_line(tmp_path, capsys):
    out = str(tmp_path / "o.csv")
    assert main(["predict", str(PAIRS), "-o", out, *TINY, "--suffix", "x", "--suffix-file", "y.txt"]) == 2
    assert "either --suffix or --suffix-file" in capsys.readouterr().err
    assert main(["predict", str(PAIRS), "-o", out, *TINY, "--candidates", "0"]) == 2
    assert main(["predict", str(PAIRS), "-o", out, *TINY, "--suffix-file", str(tmp_path / "none.txt")]) == 2
    assert "suffix file not found" in capsys.readouterr().err
    with pytest.raises(UserError, match="backend transformers"):
        from prompt_recovery.inference.recover import load_recoverer

        load_recoverer(pr.PredictConfig(input=str(PAIRS), output=out, model="tiny-random-mistral", adapter="none",
                                      candidates=3, backend="llama-cpp"))
    assert main(["predict", str(PAIRS), "-o", out, *TINY, "--bank", str(tmp_path / "nobank.csv")]) == 2
