"""scripts/check_handwritten.py: what it flags in a new file of hand-written rows before training on it."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "src/prompt_recovery/examples/family_suite.jsonl"


def _row(i, prompt, original="The bus to Lydford leaves at nine from the stop by the bakery.",
         rewritten="The Lydford bus goes at 9 from the bakery stop."):
    return {"id": f"t-{i}", "family": "casual", "original_text": original, "rewrite_prompt": prompt,
            "rewritten_text": rewritten}


def test_flags_suite_instructions_suite_text_missing_fields_and_duplicate_ids(tmp_path, capsys, script):
    suite = [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines()]
    rows = [
        _row(1, "Could you jot this down as a breezy note for my flatmate about the bus times?"),   # clean
        _row(2, suite[0]["rewrite_prompt"] + "!"),                                                 # a suite instruction
        _row(3, "Turn this into a tidy note about the trip.", original=suite[1]["original_text"]),  # a suite text
        {"id": "t-4", "family": "casual", "original_text": "x", "rewrite_prompt": "", "rewritten_text": "y"},
        _row(1, "Make a fridge note of this for Sunday's outing to the moors."),                   # id used twice
    ]
    path = tmp_path / "round_x.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    status = script("check_handwritten").main([str(path)])

    out = capsys.readouterr().out
    flagged = {line.split(" ")[1] for line in out.splitlines() if line.startswith(str(path))}
    assert status == 1
    assert flagged == {"(t-2):", "(t-3):", "(t-4):", "(t-1):"} and out.count("(t-1):") == 1  # only the second t-1
    assert f"close to suite {suite[0]['id']}" in out
    assert "8-word runs with the suites" in out
    assert "missing or empty: rewrite_prompt" in out
    assert "duplicate id t-1" in out
    assert "5 rows, 4 flagged" in out


def test_clean_file_passes_and_reports_families(tmp_path, capsys, script):
    path = tmp_path / "round_y.jsonl"
    path.write_text(json.dumps(_row(1, "Could you jot this down as a breezy note for my flatmate about the bus times?"))
                    + "\n", encoding="utf-8")
    assert script("check_handwritten").main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 rows, 0 flagged" in out
    assert "casual" in out and "length x0.79" in out   # (10 + 1) / (13 + 1) words
