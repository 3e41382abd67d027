"""Typo noise (rate respected, deterministic) and BPE dropout on a real BPE tokenizer."""

import pandas as pd
import pytest

from prompt_recovery.data.noise import add_typos, augment, bpe_dropout_support, typo_edits, with_bpe_dropout
from prompt_recovery.errors import UserError
from prompt_recovery.models import tiny_tokenizer

TEXT = ("The committee agreed to postpone the vote until the budget report arrives next month, "
        "because several members asked for more time to read the proposal carefully. ") * 20


def letters(t):
    return sum(c.isalpha() for c in t)


@pytest.mark.parametrize("rate", [0.02, 0.05, 0.1, 0.2])
def test_rate_respected(rate):
    noisy, n = typo_edits(TEXT, rate, seed=1)
    L = letters(TEXT)
    assert abs(n / L - rate) < 0.3 * rate + 0.005
    # independent check: typos never touch spaces, so words stay aligned; each typo changes one word
    a, b = TEXT.split(" "), noisy.split(" ")
    assert len(a) == len(b)
    changed_words = sum(x != y for x, y in zip(a, b))
    assert (0.75 if rate <= 0.05 else 0.5) * n <= changed_words <= n  # several typos may share a word

def test_zero_rate_deterministic_and_non_letters_untouched():
    assert add_typos(TEXT, 0.0, seed=5) == TEXT
    assert add_typos(TEXT, 0.1, seed=5) == add_typos(TEXT, 0.1, seed=5)
    assert add_typos(TEXT, 0.1, seed=5) != add_typos(TEXT, 0.1, seed=6)
    digits = "2024-05-01, 12:30 !!! ... 42"
    assert add_typos(digits, 1.0, seed=0) == digits
    with pytest.raises(UserError):
        add_typos("x", 1.5)


def test_all_operations_occur():
    noisy = add_typos("hello world", 1.0, seed=0)
    assert noisy != "hello world"
    kinds = set()
    for s in range(200):
        t, _ = typo_edits("abcdefgh", 0.2, seed=s)
        if len(t) < 8:
            kinds.add("drop")
        elif len(t) > 8:
            kinds.add("double")
        elif t.lower() == "abcdefgh" and t != "abcdefgh":
            kinds.add("case")
        elif sorted(t) == sorted("abcdefgh") and t != "abcdefgh":
            kinds.add("swap")
        elif t != "abcdefgh":
            kinds.add("neighbour")
    assert kinds == {"drop", "double", "case", "swap", "neighbour"}


def test_augment_changes_only_named_columns():
    df = pd.DataFrame({"id": ["a"], "original_text": [TEXT], "rewrite_prompt": ["Keep this prompt."],
                       "rewritten_text": [TEXT]})
    out = augment(df, 0.1, seed=0)
    assert out["rewrite_prompt"].tolist() == ["Keep this prompt."] and df["original_text"].iloc[0] == TEXT
    assert out["original_text"].iloc[0] != TEXT and out["rewritten_text"].iloc[0] != out["original_text"].iloc[0]


def test_bpe_dropout_varies_segmentation_on_copy_only():
    tok = tiny_tokenizer(chat_template=False)
    assert bpe_dropout_support(tok) is None
    text = "Rewrite this text as a poem. Summarize the email in one sentence."
    base = tok(text)["input_ids"]
    drop = with_bpe_dropout(tok, 0.5)
    seqs = {tuple(drop(text)["input_ids"]) for _ in range(10)}
    assert len(seqs) > 1 and all(len(s) >= len(base) for s in seqs)
    assert all(drop.decode(list(s)) == text for s in seqs)  # same text, different segmentation
    assert tok(text)["input_ids"] == base  # original untouched


def test_bpe_dropout_unsupported_is_explained(caplog):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    wp = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]")))
    assert "WordPiece" in bpe_dropout_support(wp)
    assert with_bpe_dropout(wp, 0.1) is wp
    assert "BPE dropout not applied" in caplog.text
    with pytest.raises(UserError, match="not BPE"):
        with_bpe_dropout(wp, 0.1, strict=True)


def test_data_noise_command_writes_a_noised_copy(tmp_path):
    from prompt_recovery.cli import main
    from prompt_recovery.schema import read_table

    src = tmp_path / "in.jsonl"
    df = pd.DataFrame({"id": ["a", "b"], "original_text": [TEXT, TEXT + " Again."],
                       "rewrite_prompt": ["Keep this prompt.", "And this one."], "rewritten_text": [TEXT, TEXT]})
    df.to_json(src, orient="records", lines=True)
    out = tmp_path / "noisy.jsonl"
    assert main(["data", "noise", "--input", str(src), "--typo-rate", "0.1", "--output", str(out)]) == 0
    noisy = read_table(out)
    assert noisy["id"].tolist() == ["a", "b"]  # ids kept: evaluation joins on them
    assert noisy["rewrite_prompt"].tolist() == ["Keep this prompt.", "And this one."]
    assert all(n != o for n, o in zip(noisy["original_text"], df["original_text"]))
    assert main(["data", "noise", "--input", str(src), "--typo-rate", "0.1", "--output", str(tmp_path / "again.jsonl")]) == 0
    assert read_table(tmp_path / "again.jsonl")["original_text"].tolist() == noisy["original_text"].tolist()  # seeded
