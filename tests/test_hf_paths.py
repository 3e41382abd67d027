"""hf:// paths wherever a table is read: read through huggingface_hub's HfFileSystem (here an in-memory
fsspec filesystem in its place; no network)."""

from __future__ import annotations

import io
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from prompt_recovery import schema
from prompt_recovery.errors import UserError

ROWS = pd.DataFrame({"id": ["007", "8"], "original_text": ["The cat sat.", "Hi, Bob"],
                     "rewrite_prompt": ["Make it a poem", "Formal"], "rewritten_text": ["A cat, sat.", "Dear Bob"]})


@pytest.fixture
def hub(monkeypatch):
    fs = fsspec.filesystem("memory", skip_instance_cache=True)
    fs.store.clear()
    fs.pipe("datasets/me/triples/train.csv", ROWS.to_csv(index=False).encode())
    fs.pipe("datasets/me/triples/dev.jsonl", ROWS.to_json(orient="records", lines=True).encode())
    buf = io.BytesIO()
    ROWS.to_parquet(buf, index=False)
    fs.pipe("datasets/me/triples/data/test.parquet", buf.getvalue())
    monkeypatch.setattr(schema, "hub_filesystem", lambda: fs)
    return fs


@pytest.mark.parametrize("name", ["train.csv", "dev.jsonl", "data/test.parquet"])
def test_read_table_reads_hf_paths(hub, name):
    df = schema.read_table(f"hf://datasets/me/triples/{name}", required=("original_text", "rewrite_prompt"))
    assert df["id"].tolist() == ["007", "8"]  # ids stay text
    assert df["original_text"].tolist() == ["The cat sat.", "Hi, Bob"]


def test_a_path_object_made_from_the_url_still_reads_from_the_hub(hub):
    # Path() folds "hf://" to "hf:/" (data import passes Path objects)
    p = Path("hf://datasets/me/triples/train.csv")
    assert str(p).startswith("hf:/datasets")
    assert len(schema.read_table(p)) == 2


def test_missing_hub_file_is_a_one_line_user_error(hub):
    with pytest.raises(UserError, match=r"input file not found: hf://datasets/me/triples/nope\.csv"):
        schema.read_table("hf://datasets/me/triples/nope.csv")


def test_unreachable_hub_is_a_one_line_user_error(monkeypatch):
    class Down:
        def isfile(self, path):
            raise ConnectionError("Failed to resolve 'huggingface.co'\nmore detail")

    monkeypatch.setattr(schema, "hub_filesystem", lambda: Down())
    with pytest.raises(UserError) as e:
        schema.read_table("hf://datasets/me/private/train.csv")
    assert "\n" not in str(e.value) and "hf auth login" in str(e.value) and "huggingface.co" in str(e.value)


def test_default_filesystem_is_huggingface_hubs():
    from huggingface_hub import HfFileSystem

    assert isinstance(schema.hub_filesystem(), HfFileSystem)  # constructing it touches no network


def test_stages_read_hf_paths(hub):
    from prompt_recovery.data.importing import import_table
    from prompt_recovery.scoring.evaluate import read_truth
    from prompt_recovery.inference.predict import read_pairs
    from prompt_recovery.training.dataset import load_rows

    assert len(load_rows("hf://datasets/me/triples/train.csv")) == 2
    assert read_pairs("hf://datasets/me/triples/dev.jsonl")["id"].tolist() == ["007", "8"]
    assert read_truth("hf://datasets/me/triples/data/test.parquet")["rewrite_prompt"].tolist() == ["Make it a poem",
                                                                                                   "Formal"]
    df = import_table("hf://datasets/me/triples/train.csv", id_prefix="hub")
    assert df["id"].tolist() == ["hub-007", "hub-8"] and df["source"].tolist() == ["train.csv"] * 2


def test_prompt_banks_and_generation_inputs_read_hf_tables(hub):
    import numpy as np

    from prompt_recovery.search.candidates import PromptBank
    from prompt_recovery.data.prompts import load_corpus, load_prompt_bank

    class Embedder:
        name = "fake"

        def encode(self, texts, progress=False):
            return np.ones((len(texts), 4), dtype=np.float32)

    bank = PromptBank.load("hf://datasets/me/triples/train.csv", Embedder(), cache=False)
    assert bank.prompts == ["Make it a poem", "Formal"] and bank.kind == "pairs"
    assert load_prompt_bank(["hf://datasets/me/triples/dev.jsonl"]) == ["Make it a poem", "Formal"]
    assert [t for t, _ in load_corpus(["hf://datasets/me/triples/data/test.parquet"], min_chars=1)] == [
        "The cat sat.", "Hi, Bob"]
    with pytest.raises(UserError, match="prompt bank file not found"):
        load_prompt_bank(["hf://datasets/me/triples/bank.txt"])  # plain text files stay local
