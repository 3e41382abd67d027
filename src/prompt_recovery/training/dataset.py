"""Training data for `train`: rows read and checked, a validation hold-out by original text, each row tokenised
into one training example of the prompt format, and the collators that batch them.

    python -c "from prompt_recovery.training.dataset import load_rows; print(len(load_rows('tests/fixtures/toy_triples.csv')))"

Each row becomes `prompting.training_example` (the one prompt format): input ids of prompt + instruction +
EOS, labels -100 on the prompt so the loss covers only the instruction and the EOS after it. Typo noise
(`data.noise.add_typos`) and BPE dropout are re-drawn every time an example is read.
"""

from __future__ import annotations

import random

from prompt_recovery.data.clean import word_key
from prompt_recovery.data.noise import add_typos
from prompt_recovery.errors import UserError
from prompt_recovery.prompting import training_example
from prompt_recovery.schema import read_table

TEXT_COLUMNS = ("original_text", "rewrite_prompt", "rewritten_text")


def load_rows(path: str, limit: int | None = None, seed: int = 0) -> list[dict]:
    """Training rows as dicts; rows with an empty text field are dropped with a printed count."""
    df = read_table(path, required=TEXT_COLUMNS)
    rows = df.to_dict("records")
    good = [r for r in rows if all(str(r[c]).strip() for c in TEXT_COLUMNS)]
    if len(good) < len(rows):
        print(f"train: {len(rows) - len(good)} of {len(rows)} rows in {path} have an empty text field; skipped")
    if not good:
        raise UserError(f"{path}: no usable rows")
    if limit is not None and len(good) > limit:
        good = random.Random(seed).sample(good, limit)
    return good


def hold_out_originals(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows): `fraction` of the distinct originals, held out with all their rows.

    Originals are compared as `data split` compares them (`data.clean.word_key`: case, punctuation and
    spacing ignored), so near-identical copies of one text are never on both sides. The originals are
    ordered by their text, grouped by key and the groups shuffled with `seed`: where no two originals
    share a key this holds out the same rows as comparing the raw texts did (the recipes' splits)."""
    keys = list(dict.fromkeys(word_key(o) for o in sorted({r["original_text"] for r in rows})))
    random.Random(seed).shuffle(keys)
    n_val = max(1, int(round(len(keys) * fraction))) if len(keys) > 1 else 0
    held = set(keys[:n_val])
    is_val = [word_key(r["original_text"]) in held for r in rows]
    return [r for r, v in zip(rows, is_val) if not v], [r for r, v in zip(rows, is_val) if v]


class RecoveryDataset:
    """Tokenised training examples; optional typo noise / BPE dropout re-drawn on every access."""

    def __init__(self, rows, tokenizer, fmt, max_length, typo_rate=0.0, typo_fraction=0.5, noisy_tokenizer=None,
                 seed=0):
        self.rows, self.tok, self.fmt, self.max_length = rows, tokenizer, fmt, max_length
        self.typo_rate, self.typo_fraction, self.noisy_tok = typo_rate, typo_fraction, noisy_tokenizer
        self.seed, self.calls = seed, [0] * len(rows)
        self.examples = [training_example(tokenizer, r["original_text"], r["rewritten_text"], r["rewrite_prompt"],
                                          fmt, max_length) for r in rows]

    @property
    def augmenting(self) -> bool:
        return self.typo_rate > 0 or self.noisy_tok is not None

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        if not self.augmenting:
            return self.examples[i]
        rng = random.Random(hash((self.seed, i, self.calls[i])))
        self.calls[i] += 1
        r = self.rows[i]
        o, w = r["original_text"], r["rewritten_text"]
        if self.typo_rate > 0 and rng.random() < self.typo_fraction:
            o = add_typos(o, rate=self.typo_rate, seed=rng.randrange(2**31))
            w = add_typos(w, rate=self.typo_rate, seed=rng.randrange(2**31))
        tok = self.noisy_tok or self.tok
        return training_example(tok, o, w, r["rewrite_prompt"], self.fmt, self.max_length)

    def token_count(self) -> int:
        return sum(len(e["input_ids"]) for e in self.examples)


def make_collator(tok, packing: bool, pad_to_multiple_of: int | None):
    """Batches of examples: packed into one row (no padding) or right-padded with masked labels."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if packing:
        # position_ids restart at 0 for each example; transformers builds a block-diagonal causal mask from them
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    return DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100, pad_to_multiple_of=pad_to_multiple_of or None)
