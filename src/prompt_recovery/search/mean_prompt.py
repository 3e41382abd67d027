"""The "mean prompt": one constant instruction that maximises the mean SCS against a set of training instructions.

    prompt-recovery mean-prompt runs/data/train.clean.jsonl -o runs/search/mean_prompt.txt --heldout-embedder smollm2-tokens
    prompt-recovery predict dev.jsonl -o pred.csv --suffix-file runs/search/mean_prompt.txt     # as a suffix
    prompt-recovery predict dev.jsonl -o pred.csv --fallback "$(cat runs/search/mean_prompt.txt)"  # as the fallback

Objective, for an instruction p and training instructions t_1..t_n under embedder e:
``mean_i max(cos(e(p), e(t_i)), 0) ** 3`` (the SCS a constant prediction p would get).

Search: beam search over word sequences. The vocabulary is the ``vocab_size`` most frequent
words of the training instructions (lower-cased, punctuation stripped). From each of the
``beam`` best sequences, every one-word extension (append a vocabulary word) and every
one-word deletion is scored; the ``beam`` best distinct sequences go on. The search stops
after ``max_words`` words or when a step improves the best score by less than ``min_gain``.
Starting point: ``--init`` (default empty).

Because the objective is measured with the embedder it is optimised for, its gain can be an
artefact of that model (word salad that happens to sit near the centroid). ``--heldout-embedder``
reports the found prompt and the best built-in constant (`scoring.baselines.CANDIDATES`) under a
second embedder as well; the same check is in docs/search.md.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from prompt_recovery.config import opt
from prompt_recovery.errors import UserError
from prompt_recovery.schema import atomic_write_text, read_table
from prompt_recovery.scoring.baselines import CANDIDATES
from prompt_recovery.scoring.embedders import load_embedder
from prompt_recovery.scoring.metrics import sharpen

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def build_vocab(instructions: Sequence[str], size: int = 200) -> list[str]:
    """The `size` most frequent lower-cased words of the instructions (ties: first seen)."""
    counts = Counter(w.lower() for t in instructions for w in _WORD.findall(str(t)))
    return [w for w, _ in counts.most_common(size)]


def mean_scs(vecs, truth_vecs, power: float = 3.0):
    """Objective per row of `vecs` (L2-normalised): mean over truths of max(cos, 0) ** power."""
    return sharpen(vecs @ truth_vecs.T, power).mean(axis=1)


def as_text(words: Sequence[str]) -> str:
    """Sentence form of a word sequence: first letter capitalised, final full stop."""
    if not words:
        return ""
    s = " ".join(words)
    return s[0].upper() + s[1:] + "."


@dataclass
class SearchResult:
    prompt: str
    score: float
    init_score: float
    history: list[dict] = field(default_factory=list)


def optimise(truths: Sequence[str], embedder, vocab: Sequence[str] | None = None, vocab_size: int = 200,
             beam: int = 4, max_words: int = 24, init: str = "", min_gain: float = 1e-5,
             progress: bool = False) -> SearchResult:
    """Beam search for the constant instruction with the highest mean SCS against `truths`."""
    from tqdm.auto import tqdm

    truths = [str(t) for t in truths if str(t).strip()]
    if not truths:
        raise UserError("no training instructions to optimise against")
    vocab = list(dict.fromkeys(vocab if vocab is not None else build_vocab(truths, vocab_size)))
    if not vocab:
        raise UserError("the vocabulary is empty")
    T = embedder.encode(truths)

    def score(seqs: list[tuple[str, ...]]):
        texts = [as_text(s) or " " for s in seqs]
        return mean_scs(embedder.encode(texts), T)

    start = tuple(_WORD.findall(init.lower())) if init else ()
    init_score = float(score([start])[0]) if start else 0.0
    beams = [(init_score, start)]
    best = beams[0]
    history = [{"step": 0, "score": init_score, "prompt": as_text(start)}]
    bar = tqdm(total=max_words, unit="word", desc="mean-prompt", disable=not progress)
    for step in range(1, max_words + 1):
        cand: set[tuple[str, ...]] = set()
        for _, seq in beams:
            if len(seq) < max_words:
                cand.update(seq + (w,) for w in vocab)
            cand.update(seq[:i] + seq[i + 1:] for i in range(len(seq)) if len(seq) > 1)
        cand -= {seq for _, seq in beams}
        if not cand:
            break
        seqs = sorted(cand)
        scores = score(seqs)
        ranked = sorted(zip(scores.tolist(), seqs), key=lambda x: -x[0])
        beams = ranked[:beam]
        bar.update(1)
        bar.set_postfix(score=f"{beams[0][0]:.4f}")
        history.append({"step": step, "score": beams[0][0], "prompt": as_text(beams[0][1])})
        if beams[0][0] < best[0] + min_gain:
            break
        best = beams[0]
    bar.close()
    return SearchResult(as_text(best[1]) or init, float(best[0]), init_score, history)


# ---------------------------------------------------------------- the `mean-prompt` command

@dataclass
class MeanPromptConfig:
    train: str | None = opt(None, "file with training instructions (rewrite_prompt column; .csv/.jsonl/.parquet)",
                            positional=True)
    output: str | None = opt(None, "text file for the found instruction (one line)", aliases=("-o",))
    embedder: str = opt("minilm", "embedder to optimise for (minilm, sentence-t5-base, smollm2-tokens, a directory)")
    heldout_embedder: str | None = opt(None, "second embedder to report the result under (e.g. smollm2-tokens)")
    eval: str | None = opt(None, "also report on this file's instructions (e.g. the dev split)")
    vocab_size: int = opt(200, "words in the search vocabulary (most frequent in the training instructions)")
    beam: int = opt(4, "beam width")
    max_words: int = opt(24, "longest instruction, in words")
    init: str = opt("", "starting instruction (default: empty)")
    sample: int | None = opt(None, "optimise against a random sample of N training instructions (faster)")
    seed: int = opt(0, "seed of --sample")
    progress: bool = opt(True, "show a progress bar")

    def validate(self) -> None:
        if not self.train:
            raise UserError("missing TRAIN file; usage: prompt-recovery mean-prompt TRAIN.jsonl -o mean_prompt.txt")
        if not self.output:
            raise UserError("missing --output/-o text file for the found instruction")
        if self.output.lower().endswith(".json"):
            raise UserError("--output is the instruction's text file (e.g. mean_prompt.txt); the details go to "
                            "the same name with .json")
        for name in ("vocab_size", "beam", "max_words"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")


def read_instructions(path: str) -> list[str]:
    df = read_table(path, required=("rewrite_prompt",))
    out = [str(t).strip() for t in df["rewrite_prompt"].dropna().tolist() if str(t).strip()]
    if not out:
        raise UserError(f"{path} holds no instructions")
    return out


def run(cfg: MeanPromptConfig) -> int:
    import random

    truths = read_instructions(cfg.train)
    if cfg.sample and cfg.sample < len(truths):
        truths = random.Random(cfg.seed).sample(truths, cfg.sample)
    emb = load_embedder(cfg.embedder)
    res = optimise(truths, emb, vocab_size=cfg.vocab_size, beam=cfg.beam, max_words=cfg.max_words, init=cfg.init,
                   progress=cfg.progress)
    atomic_write_text(cfg.output, res.prompt + "\n")
    print(f"mean prompt ({len(truths)} training instructions, {emb.name}): {res.prompt}")
    report: dict = {"prompt": res.prompt, "train": cfg.train, "n_train": len(truths), "embedder": emb.name,
                    "history": res.history, "scores": {}}
    sets = {"train": truths}
    if cfg.eval:
        sets["eval"] = read_instructions(cfg.eval)
    embedders = [emb] + ([load_embedder(cfg.heldout_embedder)] if cfg.heldout_embedder else [])
    best_const = max(CANDIDATES, key=lambda c: float(mean_scs(emb.encode([c]), emb.encode(truths))[0]))
    print(f"best built-in constant under {emb.name}: {best_const}")
    print(f"{'set':<6} {'embedder':<24} {'mean prompt':>11} {'best const':>10}")
    for name, ts in sets.items():
        for e in embedders:
            T = e.encode(ts)
            mp, bc = (float(mean_scs(e.encode([x]), T)[0]) for x in (res.prompt, best_const))
            report["scores"][f"{name}/{e.name}"] = {"mean_prompt": mp, "best_constant": bc}
            print(f"{name:<6} {e.name:<24} {mp:11.4f} {bc:10.4f}")
    report["best_constant"] = best_const
    atomic_write_text(str(Path(cfg.output).with_suffix(".json")), json.dumps(report, indent=2) + "\n")
    print(f"wrote {cfg.output} (details in {Path(cfg.output).with_suffix('.json')})")
    return 0
