"""Instruction- and source-disjoint splits, and keeping extra data out of held-out clusters."""

import json

import numpy as np
import pandas as pd
import pytest

from prompt_recovery.data.clean import word_key
from prompt_recovery.data.split import exclude_clusters, split_by_instruction, split_by_source
from prompt_recovery.errors import UserError

FAMILIES = {
    "pirate": ["Rewrite this as a pirate.", "Make it sound like a pirate.", "Say it like a pirate would."],
    "poem": ["Turn this into a poem.", "Rewrite it as a poem.", "Make a poem of this text."],
    "summary": ["Summarize this.", "Give a short summary.", "Summarize this in one line."],
    "email": ["Write this as an email.", "Turn this into an email.", "Make it an email to my boss."],
    "tweet": ["Turn this into a tweet.", "Write it as a tweet.", "Make this a tweet."],
}


class FamilyEmbedder:
    """A deterministic stand-in for a sentence embedder: one direction per family, plus a little noise."""

    name = "family-embedder"

    def encode(self, texts):
        fam = {word_key(p): i for i, ps in enumerate(FAMILIES.values()) for p in ps}
        rng = np.random.default_rng(0)
        out = []
        for t in texts:
            v = np.zeros(len(FAMILIES) + 4, dtype=np.float32)
            v[fam.get(word_key(t), len(FAMILIES))] = 1.0
            v += rng.normal(0, 0.01, v.shape).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out) if out else np.zeros((0, len(FAMILIES) + 4), dtype=np.float32)


def rows():
    out, k = [], 0
    for fam, prompts in FAMILIES.items():
        for p in prompts:
            for j in range(4):
                k += 1
                out.append({"id": f"r{k}", "original_text": f"Text {k} about {fam} number {j}.",
                            "rewrite_prompt": p, "rewritten_text": f"rewrite {k}", "source": f"src{k % 3}"})
    # one original shared by two families: must not end up in two splits
    out.append({"id": "shared-a", "original_text": "A shared original.", "rewrite_prompt": "Turn this into a poem.",
                "rewritten_text": "x", "source": "src0"})
    out.append({"id": "shared-b", "original_text": "A shared original.", "rewrite_prompt": "Summarize this.",
                "rewritten_text": "y", "source": "src1"})
    return pd.DataFrame(out)


def family_of(prompt):
    return next(f for f, ps in FAMILIES.items() if prompt in ps)


def test_instruction_split_holds_out_whole_families_and_originals():
    df = rows()
    parts, info = split_by_instruction(df, (0.6, 0.4), ("train", "heldout"), seed=1, embedder=FamilyEmbedder(),
                                       cluster_size=3)
    fam = {n: {family_of(p) for p in part["rewrite_prompt"]} for n, part in parts.items()}
    assert fam["train"] and fam["heldout"] and not fam["train"] & fam["heldout"], fam
    assert not set(parts["train"]["original_text"]) & set(parts["heldout"]["original_text"])
    assert sum(len(p) for p in parts.values()) + sum(info["dropped_shared_originals"].values()) == len(df)
    assert not set(info["clusters"]["train"]) & set(info["clusters"]["heldout"])
    # same input and seed -> same split
    again, _ = split_by_instruction(df, (0.6, 0.4), ("train", "heldout"), seed=1, embedder=FamilyEmbedder(),
                                    cluster_size=3)
    assert list(again["heldout"]["id"]) == list(parts["heldout"]["id"])


def test_cluster_file_ids_take_precedence(tmp_path):
    df = rows()
    # the file puts pirate and poem prompts into one cluster: they must stay together
    f = tmp_path / "clusters.json"
    f.write_text(json.dumps({p: 7 for p in FAMILIES["pirate"] + FAMILIES["poem"]}))
    for seed in range(5):
        parts, info = split_by_instruction(df, (0.5, 0.5), ("a", "b"), seed=seed, embedder=FamilyEmbedder(),
                                           cluster_file=f, cluster_size=3)
        where = {n for n, part in parts.items() if part["rewrite_prompt"].map(family_of).isin(["pirate", "poem"]).any()}
        assert len(where) == 1
        assert "file:7" in info["clusters"][where.pop()]


def test_exclude_clusters_drops_extra_rows_near_held_out_instructions():
    df = rows()
    parts, info = split_by_instruction(df, (0.6, 0.4), ("train", "heldout"), seed=1, embedder=FamilyEmbedder(),
                                       cluster_size=3)
    held_fams = {family_of(p) for p in parts["heldout"]["rewrite_prompt"]}
    extra = pd.DataFrame([{"id": f"x{i}", "original_text": f"new {i}", "rewrite_prompt": ps[0], "rewritten_text": "z"}
                          for i, ps in enumerate(FAMILIES.values())])
    kept, dropped = exclude_clusters(extra, json.loads(json.dumps(info)), ["heldout"], embedder=FamilyEmbedder())
    assert {family_of(p) for p in dropped["rewrite_prompt"]} == held_fams
    assert not {family_of(p) for p in kept["rewrite_prompt"]} & held_fams
    with pytest.raises(UserError, match="no split named"):
        exclude_clusters(extra, info, ["nope"], embedder=FamilyEmbedder())


def test_source_split_holds_out_every_row_of_a_source():
    df = rows()
    parts, info = split_by_source(df, ["src2"], ("train", "heldout"))
    assert set(parts["heldout"]["source"]) == {"src2"}
    assert "src2" not in set(parts["train"]["source"])
    assert len(parts["heldout"]) == (df["source"] == "src2").sum()
    with pytest.raises(UserError, match="unknown source"):
        split_by_source(df, ["nope"])


def test_data_command_instruction_split_and_exclude(tmp_path, monkeypatch, capsys):
    from prompt_recovery import cli
    from prompt_recovery.scoring.embedders import Embedder

    monkeypatch.setattr(Embedder, "load", classmethod(lambda cls, name="minilm", device="cpu": FamilyEmbedder()))
    src = tmp_path / "all.csv"
    rows().to_csv(src, index=False)
    out = tmp_path / "split"
    assert cli.main(["data", "split", "--by", "instruction", "--input", str(src), "--output", str(out),
                     "--split-names", "train", "heldout", "--fractions", "0.6", "0.4", "--cluster-size", "3",
                     "--seed", "1"]) == 0
    train, held = pd.read_json(out / "train.jsonl", lines=True), pd.read_json(out / "heldout.jsonl", lines=True)
    assert len(train) and len(held) and not set(train["rewrite_prompt"]) & set(held["rewrite_prompt"])
    assert "disjoint by instruction" in (out / "README.md").read_text()
    extra = tmp_path / "extra.csv"
    pd.DataFrame([{"original_text": "n", "rewrite_prompt": p, "rewritten_text": "z"} for p in held["rewrite_prompt"]]
                 ).to_csv(extra, index=False)
    kept = tmp_path / "kept.jsonl"
    assert cli.main(["data", "exclude", "--input", str(extra), "--clusters", str(out / "clusters.json"),
                     "--exclude-splits", "heldout", "--output", str(kept)]) == 0
    assert kept.read_text().strip() == ""  # every extra row is in a held-out cluster
    assert cli.main(["data", "split", "--by", "source", "--input", str(src), "--output", str(tmp_path / "s")]) == 2
    assert "--holdout-sources" in capsys.readouterr().err
