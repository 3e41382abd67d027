"""Import, cleaning filters, splits and the `data` command on hand-made rows."""

import json
from pathlib import Path

import pandas as pd
import pytest

from prompt_recovery.cli import main
from prompt_recovery.data.clean import Filters, clean, is_refusal, strip_chatter
from prompt_recovery.data.importing import import_tables
from prompt_recovery.data.split import split_by_original
from prompt_recovery.errors import UserError
from prompt_recovery.schema import COLUMNS, read_table

FIX = Path(__file__).parent / "fixtures"
TRIPLES = FIX / "data_triples.csv"


def expected():
    return pd.read_csv(TRIPLES, dtype=str, keep_default_na=False)["expect"].tolist()


def test_import_assigns_stable_ids_and_maps_columns():
    df = import_tables([TRIPLES, FIX / "data_variant_columns.csv"], id_prefix="x")
    assert list(df.columns) == list(COLUMNS)
    assert df["id"].tolist()[:2] == ["x-00000", "x-00001"]
    assert df["id"].tolist()[-2:] == ["x-00011", "x-00012"]  # numbering continues across files
    assert df["source"].iloc[0] == "handmade.csv" and df["source"].iloc[-1] == "data_variant_columns.csv"
    assert df["rewriter"].iloc[0] == "hand" and df["rewriter"].iloc[-1] == ""
    assert df["rewrite_prompt"].iloc[-1] == "Make it sad."  # gt_rewrite_prompt mapped
    assert df["original_text"].iloc[-2] == "It is raining."  # Original mapped
    again = import_tables([TRIPLES, FIX / "data_variant_columns.csv"], id_prefix="x")
    assert again["id"].tolist() == df["id"].tolist()


def test_import_missing_column_names_expected_and_found(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("original_text,rewritten_text\na,b\n")
    with pytest.raises(UserError) as e:
        import_tables([bad])
    msg = str(e.value)
    assert "missing column(s) rewrite_prompt" in msg and "found original_text, rewritten_text" in msg


def test_strip_chatter_variants():
    assert strip_chatter("Sure, here's the rewritten text:\n\nHello there.") == ("Hello there.", True, False)
    assert strip_chatter("**Sure, here is the poem:**\nRoses are red.")[0] == "Roses are red."
    assert strip_chatter("Certainly! Here is the text: The cat sat.")[0] == "The cat sat."
    assert strip_chatter("Sure! Here's a version\nThe cat sat.")[0] == "The cat sat."
    assert strip_chatter("**Rewritten Text:**\n\nThe cat sat.")[0] == "The cat sat."
    # two stacked preambles
    assert strip_chatter("Sure, here it is:\n\nSure. Here's the answer:\n\nThe cat sat.")[0] == "The cat sat."
    # closing chatter
    assert strip_chatter("The cat sat.\n\nLet me know if you need further revisions!") == ("The cat sat.", False, True)
    # real text is left alone
    for t in ("Here's the thing about Mike: he never lies.", "Dear Ann,\n\nI hope this email finds you well.",
              "Sure enough, the rain came."):
        assert strip_chatter(t) == (t, False, False)
    # a preamble with nothing after it is kept (the row is then judged by the other filters)
    assert strip_chatter("Sure, here's the text:")[0] == "Sure, here's the text:"


def test_refusal_detection():
    assert is_refusal("I'm sorry, but I can't fulfill that request.")
    assert is_refusal("As an AI language model, I won't do this.")
    assert is_refusal("The text is unclear. Could you please provide the full essay?")
    assert not is_refusal("I cannot believe how green the valley was that spring.")
    assert not is_refusal("As she stood there, she said \"I cannot disclose this, sir.\"")


def test_each_filter_counted_on_handmade_rows():
    df = import_tables([TRIPLES], id_prefix="t")
    kept, dropped, report = clean(df)
    exp = expected()
    assert report["rows_in"] == 11
    assert report["dropped"] == {"empty": 1, "short": 1, "refusal": 2, "restated": 1, "identical": 1,
                                 "duplicate": 1, "near_duplicate": 1}
    assert report["rows_out"] == 3 and report["dropped_total"] == 8
    assert report["preambles_stripped"] == 2 and report["postambles_stripped"] == 1
    got = dict(zip(dropped["id"], dropped["drop_reason"]))
    for i, e in enumerate(exp):
        rid = f"t-{i:05d}"
        if e.startswith("keep"):
            assert rid in kept["id"].tolist()
        else:
            assert got[rid] == e, (rid, e)
    assert kept["rewritten_text"].tolist()[0].startswith("Arr, the gatherin'")
    assert kept["rewritten_text"].tolist()[2] == ("Solar panels are like magic plates that turn sunshine into "
                                                  "power for your toys!")
    assert len(kept) + len(dropped) == report["rows_in"]  # nothing silently lost


def test_filters_are_switchable_and_eval_mode_keeps_ids():
    df = import_tables([TRIPLES], id_prefix="dev")
    kept, dropped, report = clean(df, Filters(drop_refusals=False, drop_near_duplicates=False))
    assert report["dropped"]["refusal"] == 0 and report["dropped"]["near_duplicate"] == 0
    assert report["rows_out"] == 6
    kept, dropped, report = clean(df, Filters.eval_safe())
    assert report["dropped_total"] == 1 and dropped["id"].tolist() == ["dev-00003"]
    assert kept["id"].tolist() == [f"dev-{i:05d}" for i in range(11) if i != 3]
    assert not kept["rewritten_text"].str.startswith("Sure").any()


def test_split_disjoint_by_original_and_deterministic():
    rows = []
    for k in range(60):
        for j in range(1 + k % 3):  # originals with 1-3 prompts each
            rows.append({"id": f"r{k}-{j}", "original_text": f"Original number {k}." + (" " if j else ""),
                         "rewrite_prompt": f"p{j}", "rewritten_text": f"r{k}{j}"})
    df = pd.DataFrame(rows)
    parts = split_by_original(df, [0.8, 0.1, 0.1], ["train", "dev", "test"], seed=3)
    sets = {n: set(p["original_text"].str.strip()) for n, p in parts.items()}
    assert not (sets["train"] & sets["dev"]) and not (sets["train"] & sets["test"]) and not (sets["dev"] & sets["test"])
    assert sum(len(p) for p in parts.values()) == len(df)
    assert 0.7 * len(df) <= len(parts["train"]) <= 0.9 * len(df) and len(parts["dev"]) > 0 and len(parts["test"]) > 0
    again = split_by_original(df, [0.8, 0.1, 0.1], ["train", "dev", "test"], seed=3)
    assert all(again[n]["id"].tolist() == parts[n]["id"].tolist() for n in parts)
    other = split_by_original(df, [0.8, 0.1, 0.1], ["train", "dev", "test"], seed=4)
    assert other["dev"]["id"].tolist() != parts["dev"]["id"].tolist()
    with pytest.raises(UserError, match="sum to 1"):
        split_by_original(df, [0.5, 0.1, 0.1])


def test_data_command_clean_writes_report_dropped_and_card(tmp_path, capsys):
    out = tmp_path / "train.clean.jsonl"
    assert main(["data", "clean", "--input", str(TRIPLES), "--id-prefix", "t", "--output", str(out)]) == 0
    kept = read_table(out)
    report = json.loads((tmp_path / "train.clean.report.json").read_text())
    dropped = read_table(tmp_path / "train.clean.dropped.jsonl")
    assert len(kept) == report["rows_out"] == 3 and len(dropped) == 8
    assert set(dropped["drop_reason"]) == {"empty", "short", "refusal", "restated", "identical", "duplicate",
                                           "near_duplicate"}
    card = (tmp_path / "train.clean.card.md").read_text()
    assert "- rows: 3" in card and "handmade.csv" in card and "refusal 2" in card
    assert "11 rows in" in capsys.readouterr().out


def test_data_command_split_and_errors(tmp_path, capsys):
    assert main(["data", "split", "--input", str(TRIPLES), "--output", str(tmp_path / "s"),
                 "--fractions", "0.5", "0.5", "--split-names", "a", "b"]) == 0
    a, b = read_table(tmp_path / "s" / "a.jsonl"), read_table(tmp_path / "s" / "b.jsonl")
    assert len(a) + len(b) == 11 and not set(a["original_text"]) & set(b["original_text"])
    assert "## Splits" in (tmp_path / "s" / "README.md").read_text()
    assert main(["data", "clean", "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "input file not found" in capsys.readouterr().err
    assert main(["data", "clean", "--output", str(tmp_path / "o.jsonl")]) == 2
