"""The instruction-family suite: its contents, the bundled examples taken from it, family accuracy."""

import json
from pathlib import Path

import pandas as pd
import pytest

from prompt_recovery.scoring.categories import categorize
from prompt_recovery.scoring.suite import EXAMPLE_IDS, FAMILY_CATEGORY, family_accuracy, load_examples, load_suite


def test_suite_covers_at_least_12_families_with_six_triples_each():
    rows = load_suite()
    fams = pd.Series([r["family"] for r in rows]).value_counts()
    assert len(rows) >= 60 and len(fams) >= 12 and fams.min() >= 6, fams
    assert set(fams.index) == set(FAMILY_CATEGORY)
    for r in rows:
        assert set(r) == {"id", "family", "original_text", "rewrite_prompt", "rewritten_text"}
        assert all(isinstance(v, str) and v.strip() for v in r.values())
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["original_text"] for r in rows}) == len(rows)


def _outside_their_familys_category(rows):
    return [(r["id"], r["rewrite_prompt"], categorize(r["rewrite_prompt"])) for r in rows
            if categorize(r["rewrite_prompt"]) != FAMILY_CATEGORY[r["family"]]]


def test_every_true_instruction_is_in_its_familys_category():
    assert not _outside_their_familys_category(load_suite())


_LATER_SUITES = sorted(p.stem for p in (Path(__file__).parents[1] / "data" / "eval").glob("family_suite_*.jsonl"))


def test_the_later_suites_are_all_there():
    assert _LATER_SUITES[:4] == ["family_suite_b", "family_suite_c", "family_suite_d", "family_suite_e"]


@pytest.mark.parametrize("name", _LATER_SUITES)
def test_later_suites_are_fresh_and_each_instruction_is_in_its_familys_category(name):
    """data/eval/family_suite_b.jsonl (session 11), family_suite_c.jsonl (session 13), family_suite_d.jsonl (session
    15), family_suite_e.jsonl (session 16) and any later one: 6 rows per family, no original or instruction of the
    first suite or of an earlier one (the suites sort in the order they were written)."""
    earlier = _LATER_SUITES[:_LATER_SUITES.index(name)]

    def read(stem):
        path = Path(__file__).parents[1] / "data" / "eval" / f"{stem}.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    rows = read(name)
    fams = pd.Series([r["family"] for r in rows]).value_counts()
    assert set(fams.index) == set(FAMILY_CATEGORY) and (fams == 6).all(), fams
    assert len({r["id"] for r in rows}) == len(rows) == 84
    for first in [load_suite()] + [read(e) for e in earlier]:
        assert not {r["original_text"] for r in rows} & {r["original_text"] for r in first}
        assert not {r["rewrite_prompt"].lower() for r in rows} & {r["rewrite_prompt"].lower() for r in first}
        assert not {r["id"] for r in rows} & {r["id"] for r in first}
    assert not _outside_their_familys_category(rows)


def test_bundled_examples_come_from_the_suite():
    ex = load_examples()
    assert [r["id"] for r in ex] == list(EXAMPLE_IDS)
    suite = {r["id"]: r for r in load_suite()}
    assert all(suite[r["id"]] == r for r in ex)


def test_family_accuracy_counts_category_matches_per_family():
    truth = [{"rewrite_prompt": "Summarize this.", "family": "summarise"},
             {"rewrite_prompt": "Give me the gist in one line.", "family": "summarise"},
             {"rewrite_prompt": "Turn this into a tweet.", "family": "social_post"}]
    preds = ["Write a short summary of the text.", "Rewrite it as a poem.", "Make it a Twitter post."]
    acc = family_accuracy(preds, truth)
    assert acc["n"] == 3 and acc["correct"] == 2 and acc["accuracy"] == pytest.approx(2 / 3)
    assert acc["families"]["summarise"] == {"accuracy": 0.5, "n": 2, "correct": 1}
    assert acc["families"]["social_post"]["accuracy"] == 1.0
    with pytest.raises(ValueError):
        family_accuracy(preds[:2], truth)


def test_evaluate_reports_family_accuracy_on_the_suite(tmp_path, minilm):
    from prompt_recovery.scoring.evaluate import EvaluateConfig, evaluate

    rows = load_suite()
    # predict the truth for the summarise family, a constant poem instruction elsewhere
    preds = [r["rewrite_prompt"] if r["family"] == "summarise" else "Rewrite this as a poem." for r in rows]
    p = tmp_path / "pred.csv"
    pd.DataFrame({"id": [r["id"] for r in rows], "rewrite_prompt": preds}).to_csv(p, index=False)
    rep = evaluate(EvaluateConfig(predictions=str(p), truth="suite", output_dir=str(tmp_path / "ev"), bootstrap=0,
                                  plots=False), embedder=minilm)
    fam = rep["family_accuracy"]
    style = sum(1 for r in rows if FAMILY_CATEGORY[r["family"]] == "change_style")
    summ = sum(1 for r in rows if r["family"] == "summarise")
    assert fam["correct"] == style + summ and fam["n"] == len(rows)
    assert fam["families"]["summarise"]["accuracy"] == 1.0 and fam["families"]["formal"]["accuracy"] == 0.0
    assert "Family accuracy" in (tmp_path / "ev" / "report.md").read_text()
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["family_accuracy"]["n"] == len(rows)
