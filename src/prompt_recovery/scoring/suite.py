"""The instruction-family suite: hand-written (original, instruction, rewrite) triples over 14 families.

    prompt-recovery predict suite -o runs/pred/suite.csv && prompt-recovery evaluate runs/pred/suite.csv --truth suite -d runs/eval/suite

`examples/family_suite.jsonl` was written for this project (licence-clean, Apache-2.0 like the
code): 6-7 triples for each of 14 instruction families (summarise, expand, simplify_child, formal,
casual, persona, poem_song, social_post, email_letter, bullet_list, dialogue_script,
point_of_view, humour_tone, headline_title). The bundled examples of `recover --examples` and the
web page are its first five rows. **Family accuracy**: a recovered instruction is right when
`categories.categorize` puts it in the same category as the true instruction (each family maps to
one category; a test checks that every true instruction does).

`suite` may be given wherever a table of pairs or truths is read (`predict suite`, `evaluate
--truth suite`).
"""

from __future__ import annotations

import json
from pathlib import Path

from prompt_recovery.scoring.categories import categorize

SUITE = Path(__file__).resolve().parents[1] / "examples" / "family_suite.jsonl"  # prompt_recovery/examples/
SUITE_NAME = "suite"
EXAMPLE_IDS = ("pirate", "haiku", "formal", "summary", "child")

# family -> the category (prompt_recovery.scoring.categories) of every instruction in it
FAMILY_CATEGORY = {
    "summarise": "summarise", "expand": "expand", "simplify_child": "translate_simplify",
    "formal": "change_tone", "casual": "change_tone", "humour_tone": "change_tone",
    "persona": "change_style", "poem_song": "change_style", "point_of_view": "change_style",
    "social_post": "change_format", "email_letter": "change_format", "bullet_list": "change_format",
    "dialogue_script": "change_format", "headline_title": "change_format",
}


def resolve(path: str) -> str:
    """`suite` -> the bundled suite file; anything else unchanged."""
    return str(SUITE) if str(path) == SUITE_NAME else str(path)


def load_suite() -> list[dict]:
    """All suite rows: id, family, original_text, rewrite_prompt, rewritten_text."""
    return [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_examples() -> list[dict]:
    """The bundled example pairs (`recover --examples`, the web page): the suite rows named in EXAMPLE_IDS."""
    rows = {r["id"]: r for r in load_suite()}
    return [rows[i] for i in EXAMPLE_IDS]


def family_hits(predictions, truth_rows) -> list[int]:
    """Per row: 1 when the prediction's category equals the true instruction's, else 0."""
    if len(predictions) != len(truth_rows):
        raise ValueError(f"{len(predictions)} predictions for {len(truth_rows)} truth rows")
    return [int(categorize(p) == categorize(row["rewrite_prompt"])) for p, row in zip(predictions, truth_rows)]


def family_accuracy(predictions, truth_rows) -> dict:
    """Share of predictions whose category equals the true instruction's, overall and per family.

    `truth_rows` are dicts with ``rewrite_prompt`` and ``family``; returns
    ``{"accuracy": float, "n": int, "families": {family: {"accuracy", "n", "correct"}}}``.
    """
    fams: dict[str, list[int]] = {}
    for ok, row in zip(family_hits(predictions, truth_rows), truth_rows):
        fams.setdefault(str(row.get("family") or "(none)"), []).append(ok)
    n = sum(len(v) for v in fams.values())
    correct = sum(sum(v) for v in fams.values())
    return {"accuracy": correct / n if n else float("nan"), "n": n, "correct": correct,
            "families": {f: {"accuracy": sum(v) / len(v), "n": len(v), "correct": sum(v)}
                         for f, v in sorted(fams.items())}}
