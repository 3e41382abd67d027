"""Metric values on hand-computed cases (metrics.py, categories.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prompt_recovery.errors import UserError
from prompt_recovery.scoring import metrics
from prompt_recovery.scoring.categories import CATEGORIES, categorize
from prompt_recovery.scoring.embedders import Embedder


def test_normalize_and_exact_match():
    assert metrics.match_form("  Rewrite it as a POEM!  ") == "rewrite it as a poem"
    assert metrics.match_form("“Make it—formal.”") == "make it formal"
    assert metrics.exact_match("Rewrite it as a Poem!", "rewrite it as a poem") == 1.0
    assert metrics.exact_match("Rewrite it as a poem", "Rewrite it as a song") == 0.0


def test_token_f1_hand_values():
    # pred {make,it,a,poem}, truth {rewrite,it,as,a,poem}: 3 common, P=3/4, R=3/5 -> F1=2/3
    assert metrics.token_f1("Make it a poem", "Rewrite it as a poem.") == pytest.approx(2 / 3)
    # repeated tokens count once per occurrence in both: P=2/3, R=1 -> F1=0.8
    assert metrics.token_f1("the the cat", "the cat") == pytest.approx(0.8)
    assert metrics.token_f1("Improve the text.", "Translate this into French") == 0.0
    assert metrics.token_f1("", "") == 1.0
    assert metrics.token_f1("", "something") == 0.0


def test_bleu_identical_is_100_and_unrelated_is_0():
    same = ["Rewrite this text as a poem about the sea.", "Summarize the text in one sentence."]
    assert metrics.corpus_bleu(same, same) == pytest.approx(100.0)
    assert metrics.corpus_bleu(["Improve the text."], ["Translate into French"]) == pytest.approx(0.0)
    stats = metrics.bleu_stats(["a b c d e", "x y z"], ["a b c d f", "x y w"])
    assert stats.shape == (2, 10)
    assert metrics.bleu_from_stats(stats) == pytest.approx(metrics.corpus_bleu(["a b c d e", "x y z"],
                                                                             ["a b c d f", "x y w"]))


def test_rouge_l_hand_value():
    # LCS of "rewrite it as a poem" / "make it a poem" is "it a poem" (3): P=3/4, R=3/5 -> 2/3
    assert metrics.rouge_l(["make it a poem"], ["rewrite it as a poem"])[0] == pytest.approx(2 / 3)


def test_sharpened_cosine_hand_values():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    b = np.array([[1.0, 1.0], [-1.0, 0.0], [0.0, 5.0]])
    got = metrics.sharpened_cosine(a, b)
    assert got[0] == pytest.approx(math.sqrt(0.5) ** 3)  # cos 45 degrees, cubed
    assert got[1] == 0.0  # negative cosine is clipped to 0
    assert got[2] == pytest.approx(1.0)


def test_one_scs_formula_for_pairs_matrices_and_the_mean_prompt_objective():
    from prompt_recovery.search.mean_prompt import mean_scs
    from prompt_recovery.search.search import mbr_choice

    cos = np.array([[-0.5, 0.0, 0.5, 1.0, 1.2]])
    assert metrics.sharpen(cos).tolist() == [[0.0, 0.0, 0.125, 1.0, 1.0]]
    v = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    assert mean_scs(v[:1], v).tolist() == pytest.approx([(1 + 0.6 ** 3 + 0) / 3])

    class Fixed:  # "embeds" the candidates as the rows of v
        def encode(self, texts):
            return v[[int(t) for t in texts]]

    assert mbr_choice(["0", "1", "2"], Fixed()) == 1  # the middle one is closest to both others


def test_embedders_give_zero_rows_of_their_width_for_no_texts(minilm):
    assert minilm.encode([]).shape == (0, minilm.encode(["a text"]).shape[1]) == (0, minilm.dim)


def test_scs_identical_is_one_and_unrelated_is_low(minilm):
    s = metrics.score(["Rewrite this text as a poem."], ["Rewrite this text as a poem."], minilm)
    assert s.summary["scs"] == pytest.approx(1.0, abs=1e-5)
    assert s.summary["bleu"] == pytest.approx(100.0)
    assert s.summary["exact_match"] == 1.0
    u = metrics.score(["Convert the quarterly tax figures into a spreadsheet."],
                      ["Write a love song about a lighthouse keeper."], minilm)
    assert u.summary["scs"] < 0.05
    close = metrics.score(["Rewrite the text as a poem."], ["Turn this into a short poem."], minilm)
    assert close.summary["scs"] > 0.3 > u.summary["scs"]


def test_embedder_errors():
    with pytest.raises(UserError, match="unknown embedder"):
        Embedder.load("no-such-embedder")


def test_macro_f1_and_category_accuracy():
    # a: tp1 fp0 fn1 -> 2/3; b: tp1 fp1 fn0 -> 2/3
    assert metrics.macro_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx(2 / 3)
    s = metrics.score(["Summarise it.", "Make it a poem.", "Translate to German."],
                      ["Summarize the text.", "Convert it into a table.", "Translate this into French."])
    assert "scs" not in s.summary  # no embedder given
    assert s.summary["category_accuracy"] == pytest.approx(2 / 3)
    # labels summarise (1), translate_simplify (1), change_format (0), change_style (0)
    assert s.summary["category_macro_f1"] == pytest.approx(0.5)


def test_bootstrap_ci_deterministic_and_brackets_mean():
    preds = ["Rewrite it as a poem", "Make it a poem", "Improve the text", "Summarise it", "x"] * 4
    truths = ["Rewrite it as a poem", "Rewrite it as a song", "Translate it", "Summarise it", "y"] * 4
    a = metrics.score(preds, truths, bootstrap=300, seed=1)
    b = metrics.score(preds, truths, bootstrap=300, seed=1)
    assert a.ci == b.ci
    for k in ("token_f1", "exact_match", "bleu", "category_accuracy"):
        lo, hi = a.ci[k]
        assert lo <= a.summary[k] <= hi and lo < hi
    same = metrics.score(truths, truths, bootstrap=100)
    assert same.ci["exact_match"] == [1.0, 1.0]


@pytest.mark.parametrize("text,cat", [
    ("Summarize the text in one sentence.", "summarise"),
    ("Make it shorter and more concise.", "summarise"),
    ("Expand on this with more details.", "expand"),
    ("Rewrite this in a more formal tone.", "change_tone"),
    ("Make the email more formal.", "change_tone"),
    ("Convert the text into a bulleted list.", "change_format"),
    ("Rewrite it as a formal email.", "change_format"),
    ("Rewrite this as a poem.", "change_style"),
    ("Write it in the style of Shakespeare.", "change_style"),
    ("Imagine this as a lost civilization's history.", "change_style"),
    # session 11: phrasings the writers of the hand-written rows used and the first rules missed
    ("Sum this up in under 20 words.", "summarise"),
    ("Boil this email down to what she's actually asking me.", "summarise"),
    ("Can you trim this down? I just need the dates.", "summarise"),
    ("Give me the one-line version of this letter from school.", "summarise"),
    ("Key takeaways?", "summarise"),
    ("Can you flesh this out a bit?", "expand"),
    ("Write these bullet points out as full paragraphs.", "expand"),
    ("Dumb this down for me", "translate_simplify"),
    ("Explain this like I'm five.", "translate_simplify"),
    ("Rewrite this so my grandma could understand it.", "translate_simplify"),
    ("Summarize this passage for a 10-year-old.", "summarise"),
    ("Retell this as a fairy tale for a five year old.", "change_style"),
    ("Make this office email funny.", "change_tone"),  # "this office email" is the input
    ("Make the note passive-aggressive.", "change_tone"),
    ("Rewrite this lost-cat poster as a hard-boiled noir detective.", "change_style"),
    ("Rewrite this as a pirate's warning.", "change_style"),
    ("Rewrite this letter as a diary entry from the point of view of the house.", "change_style"),
    ("Retell this news article as if a pirate captain were reporting it.", "change_style"),
    ("Rewrite this as a post-apocalyptic survival story.", "change_style"),  # "post-" is not a post
    ("Rewrite this as a debate between two friends.", "change_format"),
    ("Turn this into a diary entry.", "change_format"),
    ("Convey this message through the diary entries of a lighthouse keeper.", "change_format"),
    ("Say this the way a 1920s mobster would.", "change_style"),
    ("Rewrite it casually, the way a student would say it to classmates.", "change_tone"),
    ("Can you squash this news item into two sentences?", "summarise"),
    ("Explain how this works for a preschooler.", "translate_simplify"),
    ("Rewrite this in a formal style.", "change_tone"),  # a tone word before "style"
    ("Write it in the style of a news report.", "change_format"),
    ("Could a surfer say this instead?", "change_style"),
    # session 12: a form named by what is done with the text
    ("Help me share this on Nextdoor", "change_format"),
    ("Number the steps in this", "change_format"),
    ("Share this with me", "other"),  # a person, not a platform
    # session 14: moods named by how the text should sound or feel, plain-words simplification
    ("Make the speech sound relaxed and unhurried.", "change_tone"),
    ("Rewrite the notice so it feels cosy and wistful.", "change_tone"),
    ("make this bio totally smug", "change_tone"),
    ("Make this fairy tale absurdly funny.", "change_tone"),  # a mood asked of a genre
    ("Make this weather report absurdly funny.", "change_tone"),
    ("Rewrite the toast with plenty of cheese puns.", "change_tone"),
    ("Give the review a bitter edge.", "change_tone"),
    ("Rewrite the recipe so that it sounds genuinely heartfelt.", "change_tone"),
    ("Convert it into a heartfelt public apology.", "change_style"),  # a form named, not a mood asked for
    ("Rewrite it as a creepy, ominous warning.", "change_format"),
    ("Make it a formal email.", "change_format"),
    ("Redo the rules in easy words for my nephew.", "translate_simplify"),
    ("Put the warning into basic English.", "translate_simplify"),
    ("Can you make this easy for my neighbour's kid to read?", "translate_simplify"),
    ("Boil this down to two simple sentences.", "summarise"),
    ("Flesh out these notes so a new hire can follow them.", "expand"),
    ("Abridge the minutes.", "summarise"),
    ("Pare the intro back to its main claim.", "summarise"),
    ("Pad this paragraph out with examples.", "expand"),
    ("Develop the second point further.", "expand"),
    ("say it like you're explaining it to an old friend", "change_tone"),
    ("Raise the register of this memo.", "change_tone"),
    ("Write it as boardroom meeting minutes.", "change_format"),
    ("Give the newsletter item a comic twist.", "change_tone"),
    ("Rewrite the notice so it makes people laugh.", "change_tone"),
    ("Rewrite the tips so a ten-year-old would get it.", "translate_simplify"),
    ("Retell it the way a proud uncle would.", "change_style"),  # a persona, not a mood
    # session 15: suite D's drafts and round 7
    ("Can you boil this long product review down to a verdict?", "summarise"),
    ("Shrink the toast to a one-minute version.", "summarise"),
    ("What's the main point? Just a sentence or two.", "summarise"),
    ("Expand each rule with a sentence or two on why it matters.", "expand"),  # not "into a sentence or two"
    ("So what's the verdict? Two lines, no more.", "summarise"),
    ("Pad this notice out into a piece of roughly 300 to 400 words.", "expand"),  # a range, not "to 400 words"
    ("Make it about three times as long.", "expand"),
    ("Beef up this job ad.", "expand"),
    ("Grow this news brief into a proper feature.", "expand"),
    ("Stretch this into a short talk I can read out.", "expand"),
    ("I've never studied economics; explain this in a way someone like me would understand.", "translate_simplify"),
    ("Explain it to someone who's never been hiking.", "translate_simplify"),
    ("Could you make it super simple for first graders?", "translate_simplify"),
    ("Could you do a version of this that they'd actually understand?", "translate_simplify"),
    ("Have Yoda say this.", "change_style"),
    ("Have the houseplant talk us through its repotting.", "change_style"),
    ("Have it say less.", "other"),  # "it" is the text, not a speaker
    ("How would the vacuum itself see all this? Write it from its side.", "change_style"),
    ("Make it a phone call between Lena and her brother.", "change_format"),
    ("Adapt the fable as a short play scene with stage directions.", "change_format"),
    ("Name this story. Three options please.", "change_format"),
    ("bulletise this flyer", "change_format"),
    ("Recast the chat in proper, formal English.", "change_tone"),
    ("Translate this into French.", "translate_simplify"),
    ("Translate this into Shakespearean English.", "change_style"),
    ("Explain it to a five-year-old.", "translate_simplify"),
    ("Simplify the language.", "translate_simplify"),
    ("Proofread and fix the grammar.", "improve"),
    ("Rewrite it.", "other"),
    ("", "other"),
])
def test_categorize(text, cat):
    assert cat in CATEGORIES
    assert categorize(text) == cat


# the writers' family labels of data/handwritten that name one category (the others: mixed, combined, audience ...)
_LABEL_CATEGORY = {
    "summarise": "summarise", "expand": "expand", "simplify": "translate_simplify", "simplify_child": "translate_simplify",
    "humour_tone": "change_tone", "poem_song": "change_style", "dialogue_script": "change_format",
    **dict.fromkeys(["tone", "casual", "formal", "humour"], "change_tone"),
    **dict.fromkeys(["persona", "point_of_view", "pov", "persona_voice", "poem", "haiku", "limerick", "sonnet", "song",
                     "poetry_song", "fairy_tale", "genre", "genre_story"], "change_style"),
    **dict.fromkeys(["headline", "dialogue", "social_post", "social_media", "letter_email", "list", "email", "letter",
                     "memo", "bullet_list", "faq", "news_article", "text_message", "numbered_steps", "script",
                     "interview", "job_posting", "diary_entry", "recipe", "advertisement"], "change_format"),
    **dict.fromkeys(["improve", "paraphrase"], "improve"),
}


def test_categorize_agrees_with_the_hand_written_rows_labels():
    """The classifier against an independent labelling: the family each writer gave a hand-written row (1,794 rows
    with a one-category label; humour rows count as tone). 0.749 before session 11's rules, 0.898 after; 0.890 on the
    1,294 rows with round 5 before session 14's rules, 0.917 on the 1,474 with round 6 after; with round 7 (session 15)
    (1,634 rows) 0.899 before its rules and 0.919 after; with round 8, written after them, 0.914 on 1,794; a rule change that breaks common phrasings shows up here."""
    import json
    from pathlib import Path

    rows = [json.loads(line) for f in sorted((Path(__file__).parents[1] / "data" / "handwritten").glob("*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    labelled = [(r["rewrite_prompt"], _LABEL_CATEGORY.get(r["family"].split(":")[0])) for r in rows]  # tone:formal -> tone
    labelled = [(t, c) for t, c in labelled if c]
    assert len(labelled) >= 1000
    agree = sum(categorize(t) == c for t, c in labelled) / len(labelled)
    assert agree >= 0.90, agree


def test_categorize_fallback_replaces_other_only():
    assert categorize("Rewrite it.", fallback="change_tone") == "change_tone"
    assert categorize("", fallback="expand") == "expand"
    assert categorize("Summarize the text.", fallback="expand") == "summarise"


def test_sentence_t5_offline_is_used_or_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: never downloads
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="sentence-t5-base is not available offline"):
        Embedder.load("sentence-t5-base")
    with pytest.raises(UserError, match="not a sentence-transformers model"):
        Embedder.load(str(tmp_path))
