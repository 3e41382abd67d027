"""Rewrite prompts and originals for generation: prompt-bank files, compositional templates, corpora.

    python -c "from prompt_recovery.data.prompts import TemplatePrompts; t = TemplatePrompts(); print([t.sample(i) for i in range(5)])"

Prompts come from a bank file (JSON list, JSON object whose keys are prompts, or a table with a
``rewrite_prompt`` column / alias, or a .txt file with one prompt a line) and from compositional
templates: task × style × audience × format. Every prompt carries a category
(`prompt_recovery.scoring.categories.categorize`; a template prompt the classifier calls "other" keeps its
template's category). Originals come from corpus files (a table with an ``original_text``/``text``
column, or a .txt file of blank-line separated passages) or from the rewriter itself
(`original_request`: "Write a short <genre> about <topic>").

Sampling is by row index (`sample(k)` uses its own RNG seeded with (seed, k)), so row k of a
generation plan is the same however many rows are asked for and however often a run restarts.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from prompt_recovery.errors import UserError
from prompt_recovery.schema import read_table, read_text_file

# ------------------------------------------------------------------ compositional templates
# category -> task phrasings; "{x}" is filled from the matching STYLE list
TASKS = {
    "change_tone": ["Rewrite this text in a {tone} tone", "Make this text sound {tone}", "Give the text a {tone} voice"],
    "change_style": ["Rewrite this text as a {genre}", "Turn this text into a {genre}",
                     "Rewrite this text in the style of {author}", "Retell this as if narrated by {persona}"],
    "change_format": ["Convert this text into {format}", "Reformat this text as {format}",
                      "Present the text as {format}"],
    "summarise": ["Summarize this text", "Condense this text", "Write a short summary of this text"],
    "expand": ["Expand this text with more detail", "Elaborate on this text", "Make this text longer and richer"],
    "translate_simplify": ["Simplify this text", "Rewrite this text in plain, simple words",
                           "Translate this text into {language}"],
    "improve": ["Improve the clarity of this text", "Polish this text", "Paraphrase this text"],
}
STYLES = {
    "tone": ["formal", "casual", "humorous", "sarcastic", "optimistic", "gloomy", "friendly", "urgent", "polite",
             "angry", "enthusiastic", "solemn", "nostalgic"],
    "genre": ["poem", "haiku", "limerick", "fairy tale", "news report", "sea shanty", "rap verse", "horror story",
              "movie trailer script", "Shakespearean sonnet", "children's story", "detective story"],
    "author": ["Shakespeare", "Jane Austen", "Ernest Hemingway", "Dr. Seuss", "Edgar Allan Poe", "a tabloid reporter"],
    "persona": ["a pirate", "a robot", "a medieval knight", "a sports commentator", "a grumpy cat", "an alien"],
    "format": ["a bulleted list", "an email", "a tweet", "a text message", "a table", "a recipe", "a FAQ",
               "a dialogue", "a product advertisement", "a diary entry", "a job posting", "a news headline"],
    "language": ["French", "Spanish", "German", "Italian", "Portuguese"],
}
AUDIENCES = ["for a five-year-old", "for busy executives", "for teenagers", "for scientists", "for a general audience",
             "for tourists", "for your grandmother"]
CONSTRAINTS = ["in three sentences", "in under 50 words", "using simple vocabulary", "with a catchy title",
               "ending with a question", "using an emoji or two"]


class TemplatePrompts:
    """task × style × audience × format prompts with their template category."""

    def __init__(self, seed: int = 0, audience_p: float = 0.3, constraint_p: float = 0.25):
        self.seed, self.audience_p, self.constraint_p = seed, audience_p, constraint_p

    def sample(self, k: int) -> tuple[str, str]:
        rng = random.Random(f"template-{self.seed}-{k}")
        cat = rng.choice(sorted(TASKS))
        task = rng.choice(TASKS[cat])
        fill = {name: rng.choice(vals) for name, vals in STYLES.items()}
        text = task.format(**fill)
        if cat not in ("summarise",) and rng.random() < self.audience_p:
            text += " " + rng.choice(AUDIENCES)
        if rng.random() < self.constraint_p:
            text += ", " + rng.choice(CONSTRAINTS)
        return text + ".", cat


# ------------------------------------------------------------------ files

def _read_texts(path: str | Path, column: str, what: str) -> list[str]:
    p = Path(path)
    if not p.is_file() and not (str(p).startswith("hf:/") and p.suffix.lower() in (".csv", ".jsonl", ".parquet")):
        raise UserError(f"{what} file not found: {p}")  # (hf:// tables: read_table checks them)
    if p.suffix.lower() == ".txt":
        raw = read_text_file(p, what)
        parts = raw.split("\n\n") if column == "original_text" else raw.splitlines()
        texts = [t.strip() for t in parts]
    elif p.suffix.lower() == ".json":
        try:
            data = json.loads(read_text_file(p, what))
        except json.JSONDecodeError:
            data = None  # maybe JSON lines
        if isinstance(data, dict):
            texts = [str(k) for k in data]
        elif isinstance(data, list):
            texts = [x if isinstance(x, str) else str(x.get(column, "")) for x in data]
        else:
            texts = read_table(p, required=(column,))[column].tolist()
    else:
        texts = read_table(p, required=(column,))[column].tolist()
    texts = [str(t).strip() for t in texts]
    return [t for t in dict.fromkeys(texts) if t]


def load_prompt_bank(paths) -> list[str]:
    """All prompts of the given bank files, de-duplicated in file order."""
    out: list[str] = []
    for p in paths:
        got = _read_texts(p, "rewrite_prompt", "prompt bank")
        if not got:
            raise UserError(f"prompt bank {p} holds no prompts")
        out += got
    return list(dict.fromkeys(out))


def load_corpus(paths, min_chars: int = 40) -> list[tuple[str, str]]:
    """(text, source) for every passage of at least `min_chars` characters in the corpus files."""
    out: list[tuple[str, str]] = []
    for p in paths:
        got = [(t, Path(p).name) for t in _read_texts(p, "original_text", "originals") if len(t) >= min_chars]
        if not got:
            raise UserError(f"originals file {p} holds no text of at least {min_chars} characters")
        out += got
    return out


# ------------------------------------------------------------------ LLM-written originals

GENRES = ["news paragraph", "personal email", "product review", "short story opening", "encyclopedia entry",
          "blog post intro", "diary entry", "recipe introduction", "letter of complaint", "speech excerpt",
          "forum post", "travel description"]
TOPICS = ["a rainy day in the city", "a new smartphone", "a village festival", "climate change", "a lost dog",
          "a job interview", "space exploration", "a cooking accident", "a football match", "an old library",
          "learning to drive", "a power outage", "a birthday party", "the history of tea", "a mountain hike"]


def original_request(k: int, seed: int = 0) -> tuple[str, str]:
    """(request to the LLM for a short original text, source label) for plan row k."""
    rng = random.Random(f"original-{seed}-{k}")
    genre, topic = rng.choice(GENRES), rng.choice(TOPICS)
    return (f"Write a short {genre} (3 to 5 sentences) about {topic}. Reply with the text only.",
            f"llm-original:{genre}/{topic}")


def clip(text: str, max_chars: int) -> str:
    """Cut at a word boundary to at most `max_chars` characters."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut[: cut.rfind(" ")] if " " in cut else cut
