"""Typo noise and BPE dropout: training-time robustness to misspelled, oddly tokenised input.

    python -c "from prompt_recovery.data.noise import add_typos; print(add_typos('The quick brown fox jumps.', 0.1, seed=1))"

API (all deterministic for a given seed):
  add_typos(text, rate, seed=0) -> str
      Each letter is corrupted with probability `rate` by one of: a keyboard-neighbour
      substitution (QWERTY), a dropped letter, a swap with the next letter, a doubled letter,
      or a flipped case. rate=0 returns the text unchanged; digits, spaces and punctuation are
      never touched. `typo_edits(text, rate, seed)` returns (noisy_text, number_of_typos).
  augment(df, rate, seed=0, columns=("original_text", "rewritten_text")) -> DataFrame
      A copy of a canonical table with typos in `columns` (row i uses seed + i).
  with_bpe_dropout(tokenizer, p) -> tokenizer
      A deep copy of a fast (🤗 tokenizers) tokenizer whose BPE model drops merges with
      probability p, so one word gets different segmentations across epochs (subword
      regularisation, Provilkov et al. 2020). Use the copy for TRAINING only; keep the original
      for evaluation and generation. When the backend model is not BPE (e.g. Unigram/WordPiece,
      or a slow tokenizer) it returns the tokenizer unchanged and logs a warning saying why
      (or raises UserError with strict=True). `bpe_dropout_support(tokenizer)` returns None when
      supported, else the reason.
"""

from __future__ import annotations

import copy
import logging
import random

from prompt_recovery.errors import UserError

log = logging.getLogger(__name__)

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_POS = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}


def _neighbours(c: str) -> str:
    r, i = _POS[c]
    out = []
    for dr in (-1, 0, 1):
        rr = r + dr
        if 0 <= rr < len(_ROWS):
            for j in (i - 1, i, i + 1):
                if 0 <= j < len(_ROWS[rr]) and (rr, j) != (r, i):
                    out.append(_ROWS[rr][j])
    return "".join(out)


NEIGHBOURS = {c: _neighbours(c) for c in _POS}
OPERATIONS = ("neighbour", "drop", "swap", "double", "case")


def typo_edits(text: str, rate: float, seed: int = 0) -> tuple[str, int]:
    """(noisy text, number of typos made); see the module docstring."""
    if not 0.0 <= rate <= 1.0:
        raise UserError(f"typo rate must be between 0 and 1, got {rate}")
    if rate == 0 or not text:
        return text, 0
    rng = random.Random(seed)
    chars = list(text)
    out: list[str] = []
    n = 0
    i = 0
    while i < len(chars):
        c = chars[i]
        if not c.isalpha() or rng.random() >= rate:
            out.append(c)
            i += 1
            continue
        op = rng.choice(OPERATIONS)
        low = c.lower()
        if op == "neighbour" and low in NEIGHBOURS:
            r = rng.choice(NEIGHBOURS[low])
            out.append(r.upper() if c.isupper() else r)
        elif op == "drop":
            pass
        elif op == "swap" and i + 1 < len(chars) and chars[i + 1].isalpha() and chars[i + 1] != c:
            out += [chars[i + 1], c]
            i += 1
        elif op == "double":
            out += [c, c]
        else:  # case, and the fallback for letters without a QWERTY position or nothing to swap with
            flipped = c.lower() if c.isupper() else c.upper()
            if flipped == c:  # letters without case (e.g. CJK): drop instead
                pass
            else:
                out.append(flipped)
        n += 1
        i += 1
    return "".join(out), n


def add_typos(text: str, rate: float, seed: int = 0) -> str:
    """`text` with realistic typos: each letter corrupted with probability `rate`."""
    return typo_edits(text, rate, seed)[0]


def augment(df, rate: float, seed: int = 0, columns=("original_text", "rewritten_text")):
    """A copy of `df` with typos in `columns`; deterministic (row i, column k uses a seed derived from both)."""
    out = df.copy()
    for k, col in enumerate(columns):
        out[col] = [add_typos(t, rate, seed * 1_000_003 + i * 7 + k) for i, t in enumerate(out[col])]
    return out


def bpe_dropout_support(tokenizer) -> str | None:
    """None if `with_bpe_dropout` can apply to this tokenizer, else the reason it cannot."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer"
    kind = type(backend.model).__name__
    if kind != "BPE":
        return f"its backend model is {kind}, not BPE"
    return None


def with_bpe_dropout(tokenizer, p: float, strict: bool = False):
    """A copy of `tokenizer` with BPE dropout `p` (training only); unchanged + a warning when unsupported."""
    if not 0.0 <= p < 1.0:
        raise UserError(f"BPE dropout must be in [0, 1), got {p}")
    reason = bpe_dropout_support(tokenizer)
    if reason:
        msg = f"BPE dropout not applied: {reason}"
        if strict:
            raise UserError(msg)
        log.warning(msg)
        return tokenizer
    tok = copy.deepcopy(tokenizer)
    tok.backend_tokenizer.model.dropout = p if p > 0 else None
    return tok
