"""The evaluate and baseline commands: joins, report files, hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prompt_recovery.scoring import evaluate as ev
from prompt_recovery.cli import main
from prompt_recovery.errors import UserError
from prompt_recovery.scoring.metrics import corpus_bleu

FIX = Path(__file__).parent / "fixtures"
TRUTH, PRED = FIX / "eval_truth.csv", FIX / "eval_pred.csv"


def cfg(tmp_path, **kw):
    values = dict(predictions=str(PRED), truth=str(TRUTH), output_dir=str(tmp_path / "out"), bootstrap=200)
    values.update(kw)
    return ev.EvaluateConfig(**values)


def test_report_values_and_files(tmp_path, minilm):
    base = tmp_path / "base.csv"
    pd.DataFrame({"id": ["a5", "a4", "a3", "a2", "a1"], "rewrite_prompt": ["Rewrite this text as a poem."] * 5}
                 ).to_csv(base, index=False)
    r = ev.evaluate(cfg(tmp_path, compare=[str(base)], constants=["Improve the text."]), minilm)
    out = tmp_path / "out"
    for name in ("report.json", "report.md", "scs_hist.png", "by_category.png", "by_source.png", "baselines.png"):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "report.json").read_text())
    assert saved["metrics"] == pytest.approx(r["metrics"])
    m = r["metrics"]
    assert r["n"] == 5 and r["embedder"] == "all-MiniLM-L6-v2"
    assert m["exact_match"] == pytest.approx(2 / 5)  # a1 identical, a3 equal after normalisation
    # token F1 per row: 1, 0.4, 1, 2/13, 0 (see fixtures)
    assert m["token_f1"] == pytest.approx((1 + 0.4 + 1 + 2 / 13 + 0) / 5)
    assert m["category_accuracy"] == pytest.approx(3 / 5)  # a4 format->style, a5 translate->improve
    assert m["category_macro_f1"] == pytest.approx((2 / 3 + 1 + 1) / 6)
    preds = pd.read_csv(PRED)["rewrite_prompt"].tolist()
    truths = pd.read_csv(TRUTH)["rewrite_prompt"].tolist()
    assert m["bleu"] == pytest.approx(corpus_bleu(preds, truths))
    lo, hi = r["ci"]["scs"]
    assert lo <= m["scs"] <= hi
    # baselines on the same rows: the constant, then the compare file (joined by id, not order)
    assert [b["kind"] for b in r["baselines"]] == ["constant", "predictions"]
    # "Improve the text." vs each truth: F1 = 2/9, 4/9, 1/4, 2/5, 0
    assert r["baselines"][0]["metrics"]["token_f1"] == pytest.approx((2 / 9 + 4 / 9 + 1 / 4 + 2 / 5 + 0) / 5)
    assert r["baselines"][1]["metrics"]["exact_match"] == pytest.approx(1 / 5)
    # paired differences against the compare file: per-row token F1 of "Rewrite this text as a poem." is known
    paired = r["baselines"][1]["paired"]
    other_f1 = r["baselines"][1]["metrics"]["token_f1"]
    assert paired["token_f1"]["diff"] == pytest.approx(m["token_f1"] - other_f1)
    assert paired["scs"]["diff"] == pytest.approx(m["scs"] - r["baselines"][1]["metrics"]["scs"], abs=1e-6)
    lo, hi = paired["token_f1"]["ci"]
    assert lo <= paired["token_f1"]["diff"] <= hi and lo < hi
    assert "family_accuracy" not in paired  # no family column in this truth
    assert "paired" not in r["baselines"][0]  # constants are not paired comparisons
    assert set(r["by_source"]) == {"set-x", "set-y"} and r["by_source"]["set-x"]["n"] == 2
    assert r["by_category"]["change_style"]["scs"] == pytest.approx(1.0, abs=1e-5)
    assert r["worst"][0]["id"] in {"a4", "a5"} and len(r["worst"]) == 5
    md = (out / "report.md").read_text()
    assert "all-MiniLM-L6-v2" in md and "Model vs baselines" in md and "![scs_hist.png](scs_hist.png)" in md
    assert "Paired differences" in md and f"| base | token_f1 | {paired['token_f1']['diff']:+.4f} |" in md


def test_join_errors(tmp_path):
    truth = ev.read_truth(str(TRUTH))
    missing = pd.DataFrame({"id": ["a1", "a2"], "rewrite_prompt": ["x", "y"]})
    with pytest.raises(UserError, match="no prediction for 3 of 5"):
        ev.join(missing, truth)
    t2, preds = ev.join(missing, truth, subset=True)
    assert list(t2["id"]) == ["a1", "a2"] and preds == ["x", "y"]
    extra = pd.DataFrame({"id": ["a1", "zz"], "rewrite_prompt": ["x", "y"]})
    with pytest.raises(UserError, match="not in the truth file, e.g. zz"):
        ev.join(extra, truth, subset=True)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,rewrite_prompt\na1,x\na1,y\na2,z\n")
    with pytest.raises(UserError, match="1 duplicated id.*a1"):
        ev.read_predictions(str(dup))
    noid = tmp_path / "noid.csv"
    noid.write_text("rewrite_prompt\nx\n")
    with pytest.raises(UserError, match="missing column.*id"):
        ev.read_predictions(str(noid))


def test_truth_without_id_uses_row_numbers(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("rewrite_prompt,category\nMake it a poem.,\nSummarise it.,custom\n")
    df = ev.read_truth(str(t))
    assert list(df["id"]) == ["0", "1"]
    assert ev.truth_categories(df) == ["change_style", "custom"]  # given categories win


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "p.csv"
    bad.write_text("id,rewrite_prompt\na1,x\n")
    code = main(["evaluate", str(bad), "--truth", str(TRUTH), "-d", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no prediction for 4 of 5" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "report.json").exists()


def test_cli_evaluate_subset_and_baseline_command(tmp_path, capsys):
    p = tmp_path / "p.csv"
    p.write_text("id,rewrite_prompt\na2,Summarize the text in one sentence.\n")
    code = main(["evaluate", str(p), "--truth", str(TRUTH), "-d", str(tmp_path / "o"), "--subset",
                 "--bootstrap", "50", "--no-plots"])
    assert code == 0
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    assert r["n"] == 1 and r["metrics"]["exact_match"] == 1.0 and r["plots"] == []
    capsys.readouterr()
    best = tmp_path / "best.csv"
    code = main(["baseline", str(TRUTH), "--constants", "Improve the text.", "Rewrite this text as a poem.",
                 "--output", str(tmp_path / "rank.json"), "--write-best", str(best)])
    assert code == 0
    rank = json.loads((tmp_path / "rank.json").read_text())["ranking"]
    assert [x["instruction"] for x in rank] == sorted([x["instruction"] for x in rank],
                                                      key=lambda i: -next(r["scs"] for r in rank
                                                                          if r["instruction"] == i))
    assert rank[0]["scs"] >= rank[1]["scs"]
    out = pd.read_csv(best)
    assert list(out["id"]) == ["a1", "a2", "a3", "a4", "a5"]
    assert set(out["rewrite_prompt"]) == {rank[0]["instruction"]}


def test_paired_difference_values_and_ci():
    from prompt_recovery.scoring.metrics import paired_difference

    d = paired_difference([1, 1, 1, 0], [0, 1, 0, 0], resamples=500, seed=0)
    assert d["diff"] == pytest.approx(0.5)
    assert 0.0 <= d["ci"][0] <= 0.5 <= d["ci"][1] <= 1.0
    same = paired_difference([0.3, 0.7, 0.1], [0.3, 0.7, 0.1])
    assert same == {"diff": 0.0, "ci": [0.0, 0.0]}  # identical systems: no difference at all, whatever the rows
    assert paired_difference([1, 0], [0, 0], resamples=0)["ci"] is None
    with pytest.raises(ValueError):
        paired_difference([], [])


def test_compare_on_the_suite_reports_a_paired_family_accuracy_difference(tmp_path, minilm):
    from prompt_recovery.scoring.suite import load_suite

    rows = load_suite()
    truth = tmp_path / "suite.csv"
    pd.DataFrame(rows).to_csv(truth, index=False)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    pd.DataFrame({"id": [r["id"] for r in rows], "rewrite_prompt": [r["rewrite_prompt"] for r in rows]}).to_csv(good, index=False)
    pd.DataFrame({"id": [r["id"] for r in rows], "rewrite_prompt": ["Rewrite this as a limerick."] * len(rows)}
                 ).to_csv(bad, index=False)
    r = ev.evaluate(cfg(tmp_path, predictions=str(good), truth=str(truth), compare=[str(bad)], constants=[""],
                        plots=False), minilm)
    fam = r["baselines"][0]["paired"]["family_accuracy"]
    bad_hits = r["baselines"][0]["metrics"]["category_accuracy"]
    assert r["family_accuracy"]["accuracy"] == 1.0
    assert fam["diff"] == pytest.approx(1.0 - sum(ev.categorize(t["rewrite_prompt"]) == ev.categorize("Rewrite this as a limerick.") for t in rows) / len(rows))
    assert fam["ci"][0] > 0  # a clear winner: the CI excludes 0
    assert bad_hits < 1.0


def test_the_second_scorer_is_selectable_by_name(tmp_path):
    """`--embedder smollm2-tokens` (the scorer that shares nothing with MiniLM) works in evaluate: true
    instructions score 1 against themselves, the fixture predictions less."""
    same = tmp_path / "same.csv"
    pd.read_csv(TRUTH)[["id", "rewrite_prompt"]].to_csv(same, index=False)
    perfect = ev.evaluate(cfg(tmp_path, predictions=str(same), embedder="smollm2-tokens", constants=[""],
                              plots=False))
    assert perfect["embedder"] == "smollm2-tokens"
    assert perfect["metrics"]["scs"] == pytest.approx(1.0, abs=1e-5)
    r = ev.evaluate(cfg(tmp_path, embedder="smollm2-tokens", constants=[""], plots=False))
    assert 0 < r["metrics"]["scs"] < 0.95
