"""The one prompt format: budget split, truncation, chat/plain rendering, training labels, post-processing."""

import pytest

from prompt_recovery import prompting
from prompt_recovery.errors import UserError
from prompt_recovery.models import tiny_tokenizer
from prompt_recovery.prompting import (DEFAULT_INSTRUCTION, PromptFormat, fit_texts, from_meta, get_format,
                                       length_line, postprocess, render_prompt, split_budget, training_example)


@pytest.fixture(scope="module")
def chat_tok():
    return tiny_tokenizer(chat_template=True)


@pytest.fixture(scope="module")
def plain_tok():
    return tiny_tokenizer(chat_template=False)


@pytest.mark.parametrize("a,b,budget,expected", [
    (10, 20, 100, (10, 20)),      # fits: untouched
    (10, 500, 100, (10, 90)),     # short original gives its unused half to the rewrite
    (500, 10, 100, (90, 10)),
    (500, 500, 100, (50, 50)),    # both long: an even split
    (60, 60, 100, (50, 50)),
])
def test_split_budget(a, b, budget, expected):
    assert split_budget(a, b, budget) == expected
    assert sum(split_budget(a, b, budget)) <= budget


def test_long_texts_are_truncated_but_both_represented(chat_tok):
    original = "The quick brown fox jumps over the lazy dog. " * 60
    rewritten = "Arr, the fox be jumpin over the dog! " * 60
    o, r = fit_texts(chat_tok, original, rewritten, 64)
    assert o.endswith(prompting.TRUNCATION_MARK) and r.endswith(prompting.TRUNCATION_MARK)
    assert original.startswith(o[: -len(prompting.TRUNCATION_MARK)].rstrip()[:40])
    n_o = len(chat_tok.encode(o[: -len(prompting.TRUNCATION_MARK)], add_special_tokens=False))
    n_r = len(chat_tok.encode(r[: -len(prompting.TRUNCATION_MARK)], add_special_tokens=False))
    assert n_o <= 34 and n_r <= 34 and n_o >= 20 and n_r >= 20  # about half each (BPE may re-merge at the cut)


def test_short_texts_untouched(chat_tok):
    assert fit_texts(chat_tok, "Hello there.", "Hi!", 384) == ("Hello there.", "Hi!")


def test_chat_format_uses_chat_template(chat_tok):
    text = render_prompt(chat_tok, "cats", "dogs", get_format("chat", tokenizer=chat_tok))
    assert text.startswith("<s>[INST] Original text:\ncats\n\nRewritten text:\ndogs")
    assert text.endswith(prompting.QUESTION + " [/INST]")


@pytest.mark.parametrize("a,b,expected", [
    (110, 25, "Length: original 110 words, rewritten 25 words (4.4 times shorter)."),
    (40, 200, "Length: original 40 words, rewritten 200 words (5.0 times longer)."),
    (50, 60, "Length: original 50 words, rewritten 60 words (about the same length)."),
    (50, 40, "Length: original 50 words, rewritten 40 words (about the same length)."),
    (50, 39, "Length: original 50 words, rewritten 39 words (1.3 times shorter)."),
    (0, 3, "Length: original 0 words, rewritten 3 words (3.0 times longer)."),
])
def test_length_line(a, b, expected):
    assert length_line(" ".join(["w"] * a), " ".join(["x"] * b)) == expected


def test_length_hint_counts_whole_texts_and_reaches_training_and_inference(chat_tok):
    """The hint is part of the one prompt format: the same line in training examples and recovery prompts,
    counted before truncation; off by default (adapters trained without it are unchanged)."""
    original, rewritten = "word " * 300, "short summary here."
    fmt = from_meta({"name": "chat", "max_text_tokens": 32, "length_hint": True}, chat_tok)
    assert fmt == PromptFormat("chat", 32, True)
    text = render_prompt(chat_tok, original, rewritten, fmt)
    assert "Length: original 300 words, rewritten 3 words (100.0 times shorter).\n\n" + prompting.QUESTION in text
    assert prompting.TRUNCATION_MARK in text  # the original was cut, the count was not
    plain = render_prompt(chat_tok, original, rewritten, from_meta({"name": "chat", "max_text_tokens": 32}, chat_tok))
    assert "Length:" not in plain and plain.replace(prompting.QUESTION, "") in text.replace(
        "Length: original 300 words, rewritten 3 words (100.0 times shorter).\n\n" + prompting.QUESTION, "")
    ex = training_example(chat_tok, original, rewritten, "Summarize this.", fmt, max_length=512)
    prompt_len = ex["labels"].index(next(t for t in ex["labels"] if t != -100))
    assert "Length: original 300 words" in chat_tok.decode(ex["input_ids"][:prompt_len])


def test_chat_falls_back_to_plain_without_template(plain_tok):
    fmt = get_format("chat", tokenizer=plain_tok)
    assert fmt.name == "plain"
    text = render_prompt(plain_tok, "cats", "dogs", fmt)
    assert text.startswith("<s>Original text:\ncats") and text.endswith("\nInstruction:")


def test_unknown_format_is_a_user_error():
    with pytest.raises(UserError, match="unknown prompt format 'fancy'"):
        get_format("fancy")


def test_training_example_masks_prompt_and_learns_eos(chat_tok):
    fmt = PromptFormat("chat", 128)
    ex = training_example(chat_tok, "The cat sat.", "Arr, the cat be sittin.", "Make it a pirate line.", fmt)
    ids, labels = ex["input_ids"], ex["labels"]
    assert len(ids) == len(labels) == len(ex["attention_mask"])
    n_prompt = sum(1 for x in labels if x == -100)
    assert labels[:n_prompt] == [-100] * n_prompt and -100 not in labels[n_prompt:]
    assert ids[:n_prompt] == prompting.prompt_ids(chat_tok, "The cat sat.", "Arr, the cat be sittin.", fmt)
    assert labels[-1] == chat_tok.eos_token_id  # EOS is a learned label, not masked
    assert chat_tok.decode(labels[n_prompt:-1]) == "Make it a pirate line."


def test_training_example_respects_max_length_and_keeps_target(chat_tok):
    fmt = PromptFormat("chat", 1000)
    long = "word " * 800
    ex = training_example(chat_tok, long, long, "Summarize it.", fmt, max_length=200)
    assert len(ex["input_ids"]) <= 200
    target = [x for x in ex["labels"] if x != -100]
    assert chat_tok.decode(target[:-1]) == "Summarize it." and target[-1] == chat_tok.eos_token_id


@pytest.mark.parametrize("raw,expected", [
    ("Rewrite the email as a pirate.", "Rewrite the email as a pirate."),
    ('"Rewrite the email as a pirate."', "Rewrite the email as a pirate."),
    ("Sure, here is the instruction: Make it formal.", "Make it formal."),
    ("Instruction: Turn this into a haiku.\nThe haiku format has three lines.", "Turn this into a haiku."),
    ("The instruction was to rewrite the text as a poem.", "Rewrite the text as a poem."),
    ("Sure! Here's the prompt:\n\n**Summarize the article in one sentence.**", "Summarize the article in one sentence."),
    ("  \n\n  Make it   shorter. ", "Make it shorter."),
    ("", DEFAULT_INSTRUCTION),
    ("   \n ", DEFAULT_INSTRUCTION),
    ('""', DEFAULT_INSTRUCTION),
    ("...!!!", DEFAULT_INSTRUCTION),
    (None, DEFAULT_INSTRUCTION),
])
def test_postprocess(raw, expected):
    assert postprocess(raw) == expected


def test_postprocess_caps_length_at_a_word_boundary():
    out = postprocess("Rewrite " + "very " * 200 + "carefully.")
    assert len(out) <= prompting.MAX_INSTRUCTION_CHARS and out.endswith("very") and "\n" not in out
