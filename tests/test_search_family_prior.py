"""The family prior (`search.family_prior`): shape features, fitting, the file, the shipped table, and how it moves
the likelihood choice."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from prompt_recovery.errors import UserError
from prompt_recovery.search.family_prior import (FLOOR, SHAPE_KEYS, FamilyPrior, features, prototype_labels,
                                                 shape_features)
from prompt_recovery.search.likelihood import LikelihoodScorer

ORIGINAL = ("The council met on Tuesday to discuss the new bus routes. Residents asked for later evening services "
            "and a stop near the hospital. The transport officer said a survey would be run in the spring, and that "
            "a decision was expected before the summer timetable is printed.")


class HashEmbedder:
    """A deterministic bag-of-words embedder (no weights): each word adds a hashed +-1 pattern; rows L2-normalised."""

    name, dim = "hash", 64

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in str(t).lower().split():
                h = hashlib.sha256(w.strip(".,!?:;").encode()).digest()
                out[i] += np.unpackbits(np.frombuffer(h, dtype=np.uint8))[:self.dim].astype(np.float32) * 2 - 1
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


def toy_rows(n=12):
    """Summaries (one short sentence), bulleted lists (lines of the original) and formal rewrites (same length)."""
    rows = []
    for i in range(n):
        rows.append({"original_text": ORIGINAL + f" Meeting {i}.", "rewrite_prompt": "Summarize this text.",
                     "rewritten_text": f"The council discussed bus routes at meeting {i}."})
        rows.append({"original_text": ORIGINAL + f" Meeting {i}.", "rewrite_prompt": "Make this a bulleted list.",
                     "rewritten_text": "- Council met Tuesday\n- Later evening buses asked for\n- Hospital stop\n"
                                       f"- Spring survey\n- Meeting {i}"})
        rows.append({"original_text": ORIGINAL + f" Meeting {i}.", "rewrite_prompt": "Rewrite this in a formal tone.",
                     "rewritten_text": ORIGINAL.replace("met", "convened").replace("asked for", "requested")
                     + f" Session {i} concluded accordingly."})
    return rows


def test_shape_features_read_what_changed_in_the_form():
    listed = shape_features("One sentence here. Another one.", "- first point\n- second point\n- third")
    assert listed["list"] == "True" and listed["lines"] == "more" and listed["title"] == "False"
    assert shape_features("A long text that goes on.\nAnd on.", "A Title For It")["title"] == "True"
    talk = shape_features("They argued about money.", "Anna: We can't afford it.\nBen: We must.\nAnna: Fine.")
    assert talk["dialogue"] == "True"
    letter = shape_features("The shipment is late.", "Dear Ms Lee,\nThe shipment is late.\nKind regards,")
    assert letter["letter"] == "True"
    person = shape_features("He said he would come and his bag was ready for him.",
                            "I said I would come and my bag was ready for me.")
    assert person["person"] == "3>1"
    # a chatty preamble line of the rewrite is not read as a change of form
    assert shape_features("Short text.", "Sure, here it is:\nShort text, reworded.")["lines"] == "same"


def test_features_layout_and_prototype_labels():
    emb = HashEmbedder()
    x = features(["a b c", "d e"], ["a b", "d e f g h i j"], emb)
    assert x.shape == (2, 2 * emb.dim + 3 + len(SHAPE_KEYS))
    assert x[1, 2 * emb.dim] == pytest.approx(float(emb.encode(["d e"])[0] @ emb.encode(["d e f g h i j"])[0]))
    assert x[1, 2 * emb.dim + 1] == pytest.approx(math.log(8 / 3))  # log word-count ratio
    # each instruction gets a prototype of its own category, or the category when none is in it
    labels = prototype_labels(["Summarize this article in one sentence.", "Make this a bulleted list.",
                               "Answer the question in this text."], emb)
    assert labels[0] in ("Summarize this text.", "Summarize this text in one sentence.")
    assert labels[1] == "Rewrite this text as a bulleted list."
    assert labels[2] == "other"


def test_fit_learns_the_categories_of_toy_pairs_and_logp_is_floored():
    prior = FamilyPrior.fit(toy_rows(), HashEmbedder(), "hash", source="toy")
    assert prior.label_categories and set(prior.label_categories) == {"summarise", "change_format", "change_tone"}
    pairs = [(ORIGINAL, "The council talked about buses."),
             (ORIGINAL, "- Buses\n- Evening services\n- A survey in spring\n- A decision by summer"),
             (ORIGINAL, ORIGINAL.replace("met", "convened") + " The session concluded accordingly.")]
    probs = prior.category_probs(pairs)
    assert [max(p, key=p.get) for p in probs] == ["summarise", "change_format", "change_tone"]
    for p, lp in zip(probs, prior.label_probs(pairs)):
        assert sum(p.values()) == pytest.approx(1.0) and sum(lp.values()) == pytest.approx(1.0)
    p0 = probs[0]
    assert prior.logp(*pairs[0], "Condense this into a sentence.") == pytest.approx(math.log(p0["summarise"]))
    # a category the classifier never saw is floored, not minus infinity
    assert prior.logp(*pairs[0], "Translate this into French.") == pytest.approx(math.log(FLOOR))
    with pytest.raises(UserError, match="two kinds"):
        FamilyPrior.fit([r for r in toy_rows() if r["rewrite_prompt"] == "Summarize this text."], HashEmbedder())


def test_save_and_load_keep_the_probabilities(tmp_path):
    prior = FamilyPrior.fit(toy_rows(), HashEmbedder(), "hash", source="toy")
    path = prior.save(tmp_path / "prior.json")
    back = FamilyPrior.load(path, embedder=HashEmbedder())
    assert back.labels == prior.labels and back.source == "toy" and back.embedder_name == "hash"
    pair = [(ORIGINAL, "The council talked about buses.")]
    a, b = prior.label_probs(pair)[0], back.label_probs(pair)[0]
    assert b == pytest.approx(a, abs=1e-3)  # weights are stored to 5 decimals
    assert len(path.read_text().splitlines()) == len(prior.labels) + 2  # one line per label's weights


def test_load_refuses_unreadable_or_foreign_files(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        FamilyPrior.load(tmp_path / "missing.json")
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"format": 99, "labels": [], "coef": [], "intercept": []}))
    with pytest.raises(UserError, match="another feature layout"):
        FamilyPrior.load(bad)
    mismatched = tmp_path / "mismatched.json"
    mismatched.write_text(json.dumps({"format": 1, "labels": ["summarise", "other"], "coef": [[0.0, 1.0]],
                                      "intercept": [0.0, 0.0]}))
    with pytest.raises(UserError, match="2 labels but weights"):
        FamilyPrior.load(mismatched)


def test_the_shipped_prior_reads_clear_pairs_with_the_real_embedder():
    prior = FamilyPrior.load()
    assert prior.embedder_name == "minilm" and "mix_pub1k" in prior.source
    assert len(prior.coef[0]) == 2 * 384 + 3 + len(SHAPE_KEYS)  # all-MiniLM-L6-v2's 384 dimensions
    listed = ("- The council met on Tuesday about bus routes\n- Residents want later evening buses\n"
              "- They also want a stop near the hospital\n- A survey will run in the spring\n"
              "- A decision is due before the summer timetable")
    longer = ORIGINAL + " Several residents also raised the cost of monthly passes, which rose last year by " \
        "twelve percent. The officer promised to publish the figures behind the rise. Councillors agreed to meet " \
        "again in March to review the survey design and to hear from the bus operator about staffing." * 2
    summary = ("The council heard requests for later buses, a hospital stop and cheaper passes; a spring survey will "
               "inform a decision before summer, and councillors meet again in March.")
    pirate = ("Arr, the council be meetin' on Tuesday, mateys, to jaw about the new bus routes! The landlubbers be "
              "wantin' later buses and a stop by the sawbones' hospital. A survey be sailin' in the spring, arr!")
    probs = prior.category_probs([(ORIGINAL, listed), (longer, summary), (ORIGINAL, pirate)])
    assert [max(p, key=p.get) for p in probs] == ["change_format", "summarise", "change_style"]


class FixedScorer(LikelihoodScorer):
    """Equal judge scores for every candidate: only the priors decide."""

    def __init__(self, family_prior=None, family_prior_weight=1.0):
        self.margin, self.family_prior, self.family_prior_weight = 0.0, family_prior, family_prior_weight

    def scores(self, original, rewritten, candidates):
        return [-50.0] * len(candidates), 10


def test_the_family_prior_moves_the_likelihood_choice():
    prior = FamilyPrior.fit(toy_rows(), HashEmbedder(), "hash")
    cands = ["Rewrite this text in a formal tone.", "Summarize this text.", "Rewrite this text as a bulleted list."]
    pairs = [(ORIGINAL, "The council talked about buses."),
             (ORIGINAL, "- Buses\n- Evening services\n- A survey in spring\n- A decision by summer")]
    assert [c.index for c in FixedScorer().choose(pairs, [cands] * 2)] == [0, 0]  # ties keep the model's answer
    chosen = FixedScorer(family_prior=prior, family_prior_weight=2.0).choose(pairs, [cands] * 2)
    assert [c.instruction for c in chosen] == ["Summarize this text.", "Rewrite this text as a bulleted list."]
    assert chosen[0].scores == pytest.approx([-50.0 + 2.0 * prior.logp(*pairs[0], c) for c in cands])


def test_family_prior_option_reaches_the_scorer_and_the_description(tiny_judge):
    from prompt_recovery.search.search import SearchOptions, SearchRecoverer

    rw, base = tiny_judge
    pair = [(ORIGINAL, "The council talked about buses.")]
    plain = SearchRecoverer(base, SearchOptions(prototypes=True, select="likelihood", length_prior=False),
                            scorer=LikelihoodScorer(rw, rewrite_tokens=5, margin=0.0))
    with_opt = SearchRecoverer(base, SearchOptions(prototypes=True, select="likelihood", length_prior=False,
                                                   family_prior=True, family_prior_weight=3.0, likelihood_tokens=5,
                                                   likelihood_margin=0.0, replay_model="tiny-random-mistral"))
    plain.recover_batch(pair)
    with_opt.recover_batch(pair)
    a, b = plain.last_details[0], with_opt.last_details[0]
    assert a["candidates"] == b["candidates"]
    shipped = FamilyPrior.load()
    expected = [s + 3.0 * shipped.logp(*pair[0], c) for s, c in zip(a["likelihood_scores"], a["candidates"])]
    assert b["likelihood_scores"] == pytest.approx(expected, abs=1e-3)
    assert "family prior" in with_opt.describe() and "family prior" not in plain.describe()
    assert with_opt.scorer.family_prior.embedder is with_opt.embedder  # the search embedder is reused
