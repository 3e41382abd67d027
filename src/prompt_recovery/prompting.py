"""The one prompt format, shared by training, recovery, prediction and serving.

A recovery prompt shows the model both texts and asks for the instruction:

    Original text:
    <original, truncated to its share of the token budget>

    Rewritten text:
    <rewritten, truncated to its share of the token budget>

    Which instruction turned the original text into the rewritten text? Reply with the instruction only.

With ``length_hint`` (a training option, recorded in the adapter like the format) one line goes
before the question, counted on the *whole* texts (truncation hides how long they were):

    Length: original 110 words, rewritten 25 words (4.4 times shorter).

Small models do not count: without it, summaries and expansions come back as genre guesses.

Formats (select with `--prompt-format`; an adapter records the one it was trained with):
  * ``chat``  – the message above as a user turn through the tokenizer's chat template,
                with the generation prompt appended. Falls back to ``plain`` when the
                tokenizer has no chat template.
  * ``plain`` – the message above followed by ``\\nInstruction:``, for base models.
The target (training) is the instruction followed by the tokenizer's EOS token.

Token budget: both texts together get at most `max_text_tokens` tokens (default 384).
Each text is first granted half; a text shorter than its half gives the rest to the
other, so both stay represented. A truncated text keeps its beginning and ends with
" [...]".

Post-processing (`postprocess`) turns generated text into one clean instruction: it strips
assistant preambles ("Sure, here is the instruction:", "The instruction was to ..."),
labels, quotes and markdown, removes control and invisible format characters (NUL, ESC, BEL,
backspace, bidi overrides such as U+202E, ...), keeps the first line, caps the length at 300
characters, and never returns an empty string: it falls back to `DEFAULT_INSTRUCTION`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, replace

from prompt_recovery.errors import UserError

DEFAULT_INSTRUCTION = "Rewrite this text in a different style."
TRUNCATION_MARK = " [...]"
QUESTION = ("Which instruction turned the original text into the rewritten text? "
            "Reply with the instruction only.")
MAX_INSTRUCTION_CHARS = 300


@dataclass(frozen=True)
class PromptFormat:
    name: str = "chat"
    max_text_tokens: int = 384
    length_hint: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


FORMAT_NAMES = ("chat", "plain")


def get_format(name: str | None = None, max_text_tokens: int | None = None, tokenizer=None,
               length_hint: bool | None = False) -> PromptFormat:
    """Resolve a format name; `chat` becomes `plain` for tokenizers without a chat template."""
    name = name or "chat"
    if name not in FORMAT_NAMES:
        raise UserError(f"unknown prompt format {name!r}; choose one of: {', '.join(FORMAT_NAMES)}")
    if name == "chat" and tokenizer is not None and not getattr(tokenizer, "chat_template", None):
        name = "plain"
    return PromptFormat(name, max_text_tokens or PromptFormat.max_text_tokens, bool(length_hint))


def from_meta(meta: dict, tokenizer=None, name: str | None = None) -> PromptFormat:
    """The format an adapter records (``prompt_recovery.json``'s ``prompt_format``); `name` overrides its name."""
    return get_format(name or meta.get("name"), meta.get("max_text_tokens"), tokenizer, meta.get("length_hint"))


def split_budget(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Token counts to keep of two texts so that together they fit `budget`."""
    if len_a + len_b <= budget:
        return len_a, len_b
    half = budget // 2
    if len_a <= half:
        return len_a, budget - len_a
    if len_b <= budget - half:
        return budget - len_b, len_b
    return half, budget - half


def _truncate(tokenizer, ids: list[int], keep: int) -> str:
    text = tokenizer.decode(ids[:keep], skip_special_tokens=True)
    return text if keep >= len(ids) else text.rstrip() + TRUNCATION_MARK


def fit_texts(tokenizer, original: str, rewritten: str, budget: int) -> tuple[str, str]:
    """Truncate both texts to the shared token budget (see module docstring)."""
    a = tokenizer.encode(original, add_special_tokens=False)
    b = tokenizer.encode(rewritten, add_special_tokens=False)
    ka, kb = split_budget(len(a), len(b), budget)
    o = original if ka >= len(a) else _truncate(tokenizer, a, ka)
    r = rewritten if kb >= len(b) else _truncate(tokenizer, b, kb)
    return o, r


def check_pair(original, rewritten) -> None:
    """A one-line UserError unless both texts are non-empty strings (every recovery checks its pairs first)."""
    for name, text in (("original", original), ("rewritten", rewritten)):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"the {name} text is empty")


def length_line(original: str, rewritten: str) -> str:
    """The length hint: word counts of the two whole texts and their ratio."""
    a, b = len(original.split()), len(rewritten.split())
    ratio = b / max(a, 1)
    if 0.8 <= ratio <= 1.25:
        change = "about the same length"
    elif ratio < 1:
        change = f"{1 / max(ratio, 1e-9):.1f} times shorter"
    else:
        change = f"{ratio:.1f} times longer"
    return f"Length: original {a} words, rewritten {b} words ({change})."


def user_message(original: str, rewritten: str, hint: str | None = None) -> str:
    middle = f"{hint}\n\n" if hint else ""
    return f"Original text:\n{original.strip()}\n\nRewritten text:\n{rewritten.strip()}\n\n{middle}{QUESTION}"


def render_prompt(tokenizer, original: str, rewritten: str, fmt: PromptFormat) -> str:
    """The full prompt text (special tokens included) that precedes the instruction."""
    o, r = fit_texts(tokenizer, original, rewritten, fmt.max_text_tokens)
    msg = user_message(o, r, length_line(original, rewritten) if fmt.length_hint else None)
    if fmt.name == "chat":
        return tokenizer.apply_chat_template([{"role": "user", "content": msg}], tokenize=False,
                                             add_generation_prompt=True)
    bos = tokenizer.bos_token or ""
    return f"{bos}{msg}\nInstruction:"


def prompt_ids(tokenizer, original: str, rewritten: str, fmt: PromptFormat) -> list[int]:
    """Token ids of the prompt; the rendered text already holds its special tokens."""
    return tokenizer.encode(render_prompt(tokenizer, original, rewritten, fmt), add_special_tokens=False)


def target_ids(tokenizer, instruction: str, fmt: PromptFormat) -> list[int]:
    """Token ids the model learns to produce: the instruction, then EOS."""
    text = instruction.strip()
    if fmt.name == "plain":
        text = " " + text
    ids = tokenizer.encode(text, add_special_tokens=False)
    if tokenizer.eos_token_id is None:
        raise UserError("the tokenizer has no EOS token; cannot build training targets")
    return ids + [tokenizer.eos_token_id]


def training_example(tokenizer, original: str, rewritten: str, instruction: str, fmt: PromptFormat,
                     max_length: int = 1024) -> dict:
    """input_ids/labels for causal-LM training; the prompt part of labels is masked with -100.

    If prompt + target exceed `max_length`, the prompt budget is reduced so the whole target
    (and its EOS) is always kept.
    """
    tgt = target_ids(tokenizer, instruction, fmt)[: max_length // 2]
    if tgt[-1] != tokenizer.eos_token_id:
        tgt[-1] = tokenizer.eos_token_id
    p = prompt_ids(tokenizer, original, rewritten, fmt)
    f = fmt
    while len(p) + len(tgt) > max_length and f.max_text_tokens > 16:
        f = replace(fmt, max_text_tokens=max(16, f.max_text_tokens - (len(p) + len(tgt) - max_length) - 8))
        p = prompt_ids(tokenizer, original, rewritten, f)
    p = p[: max_length - len(tgt)]
    return {"input_ids": p + tgt, "labels": [-100] * len(p) + tgt, "attention_mask": [1] * (len(p) + len(tgt))}


_LABEL = re.compile(
    r"^\s*(?:sure|okay|ok|certainly|of course)?[\s,!.]*"
    r"(?:here(?:'s| is| was)\s+)?(?:the|an|my)?\s*"
    r"(?:original|likely|probable|recovered|rewrite|rewriting|possible)?\s*"
    r"(?:instruction|prompt|answer|rewrite prompt)s?\s*(?:given|used)?\s*(?:was|is|would be)?\s*[:\-–]\s*",
    re.I)
_TO_CLAUSE = re.compile(r"^\s*(?:the\s+)?(?:instruction|prompt)\s+(?:was|is)\s+to\s+", re.I)
_QUOTES = "\"'`“”‘’«»"


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_KEEP_FORMAT = {"\u200c", "\u200d"}  # zero-width (non-)joiners: part of how some scripts and emoji are written


def _is_control(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cs") or (cat == "Cf" and ch not in _KEEP_FORMAT)


def strip_controls(text: str) -> str:
    """`text` without control characters (NUL, ESC, BEL, backspace, DEL, C1 codes), lone surrogates and
    invisible format characters (bidi overrides such as U+202E, zero-width spaces, BOM). Tabs become
    spaces; line breaks are kept, as line breaks."""
    if text.isprintable():
        return text
    text = _ANSI.sub("", text)  # whole terminal escape sequences, not just their ESC
    out = []
    for ch in text:
        if ch in "\n\r\u2028\u2029":
            out.append("\n")
        elif ch in "\t\v\f":
            out.append(" ")
        elif not _is_control(ch):
            out.append(ch)
    return "".join(out)


def postprocess(text: str | None, fallback: str = DEFAULT_INSTRUCTION) -> str:
    """One clean instruction line from raw generated text; never empty (see module docstring)."""
    if not text:
        return fallback
    text = strip_controls(text).replace("**", "").replace("__", "")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    out = ""
    for ln in lines:
        ln = _LABEL.sub("", ln, count=1)
        m = _TO_CLAUSE.match(ln)
        if m:
            rest = ln[m.end():]
            ln = rest[:1].upper() + rest[1:]
        ln = ln.strip().strip(_QUOTES).strip()
        ln = re.sub(r"^[-*#>]+\s*", "", ln).strip().strip(_QUOTES).strip()
        if re.search(r"[A-Za-z]", ln):
            out = ln
            break
    out = re.sub(r"\s+", " ", out)
    if len(out) > MAX_INSTRUCTION_CHARS:
        cut = out[:MAX_INSTRUCTION_CHARS]
        out = cut[: cut.rfind(" ")] if " " in cut else cut
    return out or fallback
