"""Cleaning filters for (original, prompt, rewrite) triples, each switchable and counted.

    prompt-recovery data clean --input ../shared/data/public_triples/train.csv --id-prefix train --output runs/data/train.clean.jsonl
    prompt-recovery data clean --eval --input ../shared/data/public_triples/dev.csv --id-prefix dev --output runs/data/dev.clean.jsonl

Steps, in this order (each row is dropped for the FIRST reason that applies):
  strip_preamble   assistant chatter removed from ``rewritten_text``: an opening line such as
                   "Sure, here's the rewritten text:" / "**Rewritten text:**" and a closing
                   "I hope this helps..." / "Let me know if..." paragraph (counted, not dropped)
  empty            a required field (original, prompt, rewrite) is empty after stripping
  short            rewrite shorter than ``min_rewrite_chars`` characters
  refusal          rewrite opens with a refusal or a clarification request ("I'm sorry, but",
                   "I cannot fulfill", "As an AI", "Could you please provide ...")
  restated         rewrite restates the instruction: it contains the whole prompt (normalised)
  identical        rewrite equals the original (up to whitespace)
  duplicate        exact duplicate of an earlier (original, prompt, rewrite) triple
  near_duplicate   same normalised original and prompt as an earlier row, and a rewrite at
                   least ``near_duplicate_ratio`` similar (difflib ratio)
`eval_safe()` keeps only strip_preamble + empty, for evaluation sets (ids stay stable).
Dropped rows are returned with their reason (the command writes them to ``*.dropped.jsonl``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, fields

REASONS = ("empty", "short", "refusal", "restated", "identical", "duplicate", "near_duplicate")


@dataclass
class Filters:
    strip_preamble: bool = True
    drop_empty: bool = True
    drop_short: bool = True
    min_rewrite_chars: int = 10
    drop_refusals: bool = True
    drop_restated: bool = True
    min_restated_words: int = 3
    drop_identical: bool = True
    drop_duplicates: bool = True
    drop_near_duplicates: bool = True
    near_duplicate_ratio: float = 0.9

    @classmethod
    def eval_safe(cls) -> "Filters":
        """Only what an evaluation set needs: strip preambles, drop rows with an empty field."""
        f = cls(**{x.name: False for x in fields(cls) if x.type in (bool, "bool")})
        f.strip_preamble = True
        f.drop_empty = True
        return f

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ assistant chatter

_OPENER = r"(?:sure|certainly|of course|absolutely|okay|ok|alright|great|yes|here(?:'s|’s| is| are)|below is|the following is)"
# a whole first line like "Sure, here's the rewritten text as a haiku:" or "**Rewritten text:**"
_PREAMBLE_LINE = re.compile(
    rf"^[\W_]*(?:{_OPENER}\b[^\n]{{0,300}}|(?:the\s+)?(?:rewritten|revised|modified|adapted|new|simplified|updated|"
    rf"translated|converted|transformed)\s+(?:text|version|sentence|essay|passage|paragraph)[^\n]{{0,80}})"
    rf":[\s*_#]*(?:\n|$)", re.I)
# the same preamble followed by the text on the same line: "Sure, here is the text: The ..."
_PREAMBLE_INLINE = re.compile(rf"^[\W_]*{_OPENER}\b[^\n:]{{0,200}}\bhere(?:'s|’s| is| are)?\b[^\n:]{{0,200}}:[\s*_]+", re.I)
# "Sure! Here's a ..." with no colon but a line break
_PREAMBLE_EXCL = re.compile(rf"^[\W_]*(?:sure|certainly|of course|absolutely|okay)[!.,][^\n]{{0,200}}\n", re.I)
_POSTAMBLE = re.compile(
    r"\n\s*[*_]*\s*(?:I hope (?:this|that) (?:helps|revision|rewrite|version|meets|is what|captures|fits)|"
    r"Let me know if you (?:need|would|'d|want|have any (?:other|further))|Feel free to (?:ask|adjust|modify|let me)|"
    r"(?:In )?this rewritten (?:version|text)|This rewrite\b|Is there anything else)[^\n]*\s*$", re.I)


def strip_chatter(text: str) -> tuple[str, bool, bool]:
    """Remove an assistant preamble and closing chatter. Returns (text, had_preamble, had_postamble)."""
    t = text.strip()
    pre = False
    for _ in range(3):  # "**Sure, here it is:**\n\nSure, here's the answer:\n\n..." has two
        for rx in (_PREAMBLE_LINE, _PREAMBLE_INLINE, _PREAMBLE_EXCL):
            m = rx.match(t)
            if m and t[m.end():].strip():
                t, pre = t[m.end():].strip(), True
                break
        else:
            break
    post = False
    m = _POSTAMBLE.search(t)
    if m and t[:m.start()].strip():
        t, post = t[:m.start()].strip(), True
    return t, pre, post


# ------------------------------------------------------------------ detectors

_REFUSAL_START = re.compile(
    r"^[\W_]*(?:(?:I'?m|I am|I’m)\s+(?:so\s+|very\s+)?sorry|sorry[,.!]|(?:I|we)\s+apologi[sz]e|As an AI\b|As a (?:large )?language model|"
    r"(?:I|we)\s+(?:cannot|can't|can’t|can not|am unable to|'m unable to|’m unable to|am not able to|won't|will not|"
    r"do not|don't)\s+(?:be able to\s+)?(?:fulfill|fulfil|comply|help|assist|provide|rewrite|create|generate|complete|"
    r"perform|process|answer|write|produce|translate|summari[sz]e|continue|do that|engage)|"
    r"Unfortunately,? I\b)", re.I)
_CLARIFY = re.compile(r"\b(?:could|can|would) you (?:please )?(?:provide|clarify|specify|share|give me)\b", re.I)


def is_refusal(text: str) -> bool:
    head = text[:300]
    return bool(_REFUSAL_START.match(head) or _CLARIFY.search(head))


_WORD = re.compile(r"[a-z0-9]+")


def word_key(text: str) -> str:
    """Lower-case ASCII words and digits only (punctuation, markdown, whitespace and other characters
    removed): the key under which rows count as duplicates, restated prompts and the same original or
    instruction across splits. (`metrics.match_form` is the looser form the metrics compare.)"""
    return " ".join(_WORD.findall(text.lower()))


def restates(prompt: str, rewrite: str, min_words: int = 3) -> bool:
    p = word_key(prompt)
    return len(p.split()) >= min_words and p in word_key(rewrite)


# ------------------------------------------------------------------ the filter pass

def clean(df, filters: Filters | None = None, progress: bool = False):
    """Apply `filters` to a canonical DataFrame. Returns (kept, dropped_with_reason, report)."""
    from tqdm.auto import tqdm

    f = filters or Filters()
    df = df.reset_index(drop=True).copy()
    n_in = len(df)
    counts = {"preambles_stripped": 0, "postambles_stripped": 0}
    if f.strip_preamble:
        out = [strip_chatter(t) for t in df["rewritten_text"]]
        df["rewritten_text"] = [o[0] for o in out]
        counts["preambles_stripped"] = sum(o[1] for o in out)
        counts["postambles_stripped"] = sum(o[2] for o in out)
    reason = [""] * n_in
    seen_exact: set = set()
    groups: dict[tuple[str, str], list[str]] = {}
    rows = df[["original_text", "rewrite_prompt", "rewritten_text"]].itertuples(index=False)
    for i, (o, p, r) in enumerate(tqdm(rows, total=n_in, desc="cleaning", disable=not progress)):
        if f.drop_empty and (not o.strip() or not p.strip() or not r.strip()):
            reason[i] = "empty"
        elif f.drop_short and len(r.strip()) < f.min_rewrite_chars:
            reason[i] = "short"
        elif f.drop_refusals and is_refusal(r):
            reason[i] = "refusal"
        elif f.drop_restated and restates(p, r, f.min_restated_words):
            reason[i] = "restated"
        elif f.drop_identical and " ".join(o.split()) == " ".join(r.split()):
            reason[i] = "identical"
        elif f.drop_duplicates and (o, p, r) in seen_exact:
            reason[i] = "duplicate"
        elif f.drop_near_duplicates and _near_dup(groups.get((word_key(o), word_key(p)), ()), word_key(r), f.near_duplicate_ratio):
            reason[i] = "near_duplicate"
        if not reason[i]:
            seen_exact.add((o, p, r))
            groups.setdefault((word_key(o), word_key(p)), []).append(word_key(r))
    df["drop_reason"] = reason
    kept = df[df["drop_reason"] == ""].drop(columns="drop_reason").reset_index(drop=True)
    dropped = df[df["drop_reason"] != ""].reset_index(drop=True)
    by_reason = {r: reason.count(r) for r in REASONS}
    report = {"rows_in": n_in, **counts, "dropped": by_reason, "dropped_total": len(dropped), "rows_out": len(kept),
              "filters": f.to_dict()}
    if "source" in df.columns and len(dropped):
        report["dropped_by_source"] = {s: g["drop_reason"].value_counts().to_dict()
                                       for s, g in dropped.groupby("source")}
    return kept, dropped, report


def _near_dup(previous, r: str, ratio: float) -> bool:
    for q in previous:
        sm = difflib.SequenceMatcher(None, q, r, autojunk=False)
        if sm.real_quick_ratio() >= ratio and sm.quick_ratio() >= ratio and sm.ratio() >= ratio:
            return True
    return False
