"""scripts/quality_table.py: the decision table of a quality run, read from the reports quality_run.sh leaves."""

import json
from pathlib import Path

import pandas as pd
import pytest

from prompt_recovery.scoring.suite import load_suite


def _pred(path: Path, ids, prompts):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids, "rewrite_prompt": prompts}).to_csv(path, index=False)


def test_pooled_family_accuracy_is_paired_over_the_suite_rows(tmp_path, script):
    rows = load_suite()
    ids = [r["id"] for r in rows]
    truth = [r["rewrite_prompt"] for r in rows]  # every true instruction is in its family's category (test_suite)
    half = [t if i % 2 == 0 else "" for i, t in enumerate(truth)]  # an empty answer is "other": wrong
    _pred(tmp_path / "pred/new_suite.csv", ids, truth)
    _pred(tmp_path / "pred/old_suite.csv", ids, half)
    _pred(tmp_path / "probe/new_sweep/suite/w1_a0_m0.05.csv", ids, truth)
    _pred(tmp_path / "probe/old_sweep/suite/w1_a0_m0.05.csv", ids, truth)
    (tmp_path / "eval/new_suite").mkdir(parents=True)  # quality_eval.sh's report: names the truth file
    (tmp_path / "eval/new_suite/report.json").write_text(json.dumps({"truth": "suite", "family_accuracy": {"accuracy": 1}}))
    out = script("quality_table").pooled("new", "old", ["heldout", "suite"], tmp_path)
    n, right = len(rows), (len(rows) + 1) // 2
    plain = [c.strip() for c in out[0].split("|")[1:-1]]
    assert plain[:4] == ["suites pooled, family accuracy, plain", str(n), f"{right / n:.3f}", "1.000"]
    assert plain[4].startswith(f"{1 - right / n:+.3f} [")
    lo, hi = (float(v) for v in plain[4].split("[")[1].rstrip("]").split(", "))
    assert 0 < lo < 1 - right / n < hi < 1  # a paired CI around the difference, above 0
    assert "+0.000 [+0.000, +0.000]" in out[1]  # reranked answers the same: no difference, no spread


def test_rows_read_the_paired_reports_and_mark_what_is_missing(tmp_path, script):
    rep = {"n": 84, "metrics": {"scs": 0.12}, "family_accuracy": {"accuracy": 0.70},
           "baselines": [{"metrics": {"scs": 0.10},
                          "paired": {"scs": {"diff": 0.02, "ci": [-0.01, 0.05]},
                                     "family_accuracy": {"diff": 0.05, "ci": [0.0, 0.1]}}}]}
    d = tmp_path / "eval/new_vs_old_suited_minilm"
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps(rep))
    out = script("quality_table").rows("new", "old", ["suited"], tmp_path)
    by = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in out[2:]}
    assert by["suited scs, plain"] == ["84", "0.100", "0.120", "+0.020 [-0.010, +0.050]", "-"]
    assert by["suited family accuracy, plain"][:4] == ["84", "0.650", "0.700", "+0.050 [+0.000, +0.100]"]
    assert by["suited scs, reranked"] == ["-", "-", "-", "-", "-"]


def test_unknown_part_is_refused(script):
    with pytest.raises(SystemExit):
        script("quality_table").main(["new", "--parts", "suitex"])
