"""Several candidate instructions per pair: beam search or sampling from the recovery model, plus bank neighbours.

    prompt-recovery predict dev.jsonl -o pred.csv --candidates 4                      # 4 model candidates, MBR choice
    prompt-recovery predict dev.jsonl -o pred.csv --candidates 4 --bank train.jsonl --bank-k 2
    python -c "from prompt_recovery.inference.recover import Recoverer; from prompt_recovery.search.candidates import model_candidates; r = Recoverer.load(backend='transformers'); print(model_candidates(r, [('Hi there.', 'Ahoy, matey!')], 4))"

Model candidates (`model_candidates`): the greedy instruction first (the plain prediction,
so candidate 0 is always what `recover` without options returns), then the distinct
outputs of beam search (``method="beam"``: ``num_beams=k``, ``num_return_sequences=k``)
or of nucleus sampling (``method="sample"``: temperature, top-p 0.95, seeded), each
post-processed like any prediction and de-duplicated after normalisation, at most k in all.
Beam search and sampling run on the transformers engine (the llama-cpp and vllm engines decode
greedily only and say so).

Bank candidates (`PromptBank`): a file of known instructions.
  * a table of triples (``original_text, rewritten_text, rewrite_prompt``, e.g. the training
    split): its pairs are embedded once (cached on disk under ``$PROMPT_RECOVERY_CACHE/bank``)
    and the prompts of the ``bank_k`` pairs most similar to the query pair are returned.
    Pair similarity: cosine of the pair keys ``normalise(normalise(e(rewritten) - e(original)) + e(rewritten))``
    (what changed, plus what the result is about), with `e` the search embedder (MiniLM).
  * a plain prompt bank (``.json``/``.txt``/table with only ``rewrite_prompt``): the prompts
    closest to the model's greedy candidate (paraphrases of it from the bank).

Prototype candidates (``--prototypes``, `PROTOTYPES`): one generic instruction per instruction family of the
issue that defined the family suite (summarise, expand, simplify for a child, formal, casual, humour, poem, tweet,
email, list, dialogue, headline, persona, point of view, paraphrase), added to every row, for a selection rule that
can tell whether an instruction explains the rewrite (``--select likelihood``, `search.likelihood`).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

from prompt_recovery.data.prompts import load_prompt_bank
from prompt_recovery.errors import UserError
from prompt_recovery.models import cache_root
from prompt_recovery.prompting import postprocess
from prompt_recovery.schema import atomic_path, read_table
from prompt_recovery.scoring.metrics import match_form

log = logging.getLogger(__name__)
METHODS = ("beam", "sample")
PROTOTYPES = (
    "Summarize this text.",
    "Summarize this text in one sentence.",
    "Expand this text with more details.",
    "Rewrite this text so that a young child can understand it.",
    "Simplify this text.",
    "Rewrite this text in a formal tone.",
    "Rewrite this text in a casual, friendly tone.",
    "Rewrite this text to be funny.",
    "Rewrite this text as a poem.",
    "Rewrite this text as a tweet.",
    "Rewrite this text as an email.",
    "Rewrite this text as a bulleted list.",
    "Rewrite this text as a dialogue.",
    "Write a headline for this text.",
    "Rewrite this text in the voice of a pirate.",
    "Rewrite this text from a first-person point of view.",
    "Paraphrase this text.",
)


def dedupe(texts: Sequence[str], limit: int | None = None) -> list[str]:
    """Texts in order, dropping repeats by normalised form; at most `limit`."""
    seen, out = set(), []
    for t in texts:
        key = match_form(t)
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(t)
        if limit is not None and len(out) >= limit:
            break
    return out


def generate_alternatives(recoverer, pairs: Sequence[tuple[str, str]], k: int, method: str = "beam",
                          temperature: float = 0.8, seed: int = 0, batch_size: int | None = None) -> list[list[str]]:
    """k raw-decoded alternatives per pair from beam search or sampling: `recoverer.engine.generate_many`
    (the transformers engine; the others say in one line that they decode greedily only)."""
    import torch

    if method not in METHODS:
        raise UserError(f"unknown candidate method {method!r}; choose one of: {', '.join(METHODS)}")
    ids = [recoverer.prompt_ids(o, r) for o, r in pairs]
    bs = max(1, (batch_size or recoverer.batch_size) // max(1, k // 2))  # k sequences per prompt in memory
    if method == "beam":
        kw = dict(do_sample=False, num_beams=k, early_stopping=True)
    else:
        torch.manual_seed(seed)
        kw = dict(do_sample=True, temperature=temperature, top_p=0.95)
    return recoverer.engine.generate_many(ids, recoverer.max_new_tokens, bs, num_return_sequences=k, **kw)


def model_candidates(recoverer, pairs: Sequence[tuple[str, str]], k: int, method: str = "beam",
                     temperature: float = 0.8, seed: int = 0, batch_size: int | None = None,
                     greedy: Sequence[str] | None = None) -> list[list[str]]:
    """Up to k distinct instructions per pair, the greedy one first (see module docstring)."""
    if k < 1:
        raise UserError("--candidates must be at least 1")
    if greedy is None:
        greedy = recoverer.recover_batch(list(pairs), batch_size)
    if k == 1:
        return [[g] for g in greedy]
    alts = generate_alternatives(recoverer, pairs, k, method, temperature, seed, batch_size)
    # an alternative that post-processes to nothing is dropped (not replaced by the fallback instruction)
    return [dedupe([g] + [postprocess(a, fallback="") for a in alt], k) for g, alt in zip(greedy, alts)]


# ---------------------------------------------------------------- prompt bank

def _unit(x):
    import numpy as np

    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def pair_keys(e_original, e_rewritten):
    """Pair keys for nearest-pair retrieval (see module docstring)."""
    return _unit(_unit(e_rewritten - e_original) + e_rewritten)


class PromptBank:
    """Known instructions to add as candidates; see the module docstring for the two kinds of bank."""

    def __init__(self, prompts: list[str], embedder, keys=None, source: str = ""):
        if not prompts:
            raise UserError(f"prompt bank {source or ''} holds no prompts".replace("  ", " "))
        self.prompts, self.embedder, self.keys, self.source = prompts, embedder, keys, source
        self._prompt_vecs = None

    @property
    def kind(self) -> str:
        return "pairs" if self.keys is not None else "prompts"

    @classmethod
    def load(cls, path: str, embedder, cache: bool = True, progress: bool = False) -> "PromptBank":
        p = Path(path)
        if not p.is_file() and not (str(p).startswith("hf:/") and p.suffix.lower() in (".csv", ".jsonl", ".parquet")):
            raise UserError(f"prompt bank file not found: {p}")  # (hf:// tables: read_table checks them)
        if p.suffix.lower() in (".csv", ".jsonl", ".parquet", ".tsv"):
            df = read_table(p)
            if {"original_text", "rewritten_text", "rewrite_prompt"} <= set(df.columns):
                df = df.dropna(subset=["original_text", "rewritten_text", "rewrite_prompt"])
                df = df[df["rewrite_prompt"].astype(str).str.strip() != ""]
                prompts = df["rewrite_prompt"].astype(str).str.strip().tolist()
                keys = cls._pair_keys(df["original_text"].astype(str).tolist(),
                                      df["rewritten_text"].astype(str).tolist(), embedder, p, cache, progress)
                return cls(prompts, embedder, keys, str(p))
        return cls(load_prompt_bank([p]), embedder, None, str(p))

    @staticmethod
    def _pair_keys(originals, rewrittens, embedder, path: Path, cache: bool, progress: bool):
        import numpy as np

        h = hashlib.sha256(f"{embedder.name}\x1e".encode())
        for o, r in zip(originals, rewrittens):
            h.update(f"{o}\x1f{r}\x1e".encode())
        target = cache_root() / "bank" / f"{path.stem}-{h.hexdigest()[:16]}.npz"
        if cache and target.is_file():
            with np.load(target) as z:
                return pair_keys(z["original"], z["rewritten"])
        log.info("embedding %d bank pairs of %s (once; cached in %s)", len(originals), path, target)
        eo = embedder.encode(originals, progress=progress)
        er = embedder.encode(rewrittens, progress=progress)
        if cache:
            with atomic_path(target, suffix=".npz") as tmp:  # (np.savez adds .npz to other names)
                np.savez(tmp, original=eo, rewritten=er)
        return pair_keys(eo, er)

    def nearest(self, pairs: Sequence[tuple[str, str]], k: int, greedy: Sequence[str] | None = None,
                exclude_self: bool = False) -> list[list[str]]:
        """Up to k distinct bank prompts per pair, most similar first.

        `exclude_self` skips bank pairs identical to the query (for evaluating on the bank's own rows).
        """
        import numpy as np

        if k < 1 or not pairs:
            return [[] for _ in pairs]
        if self.keys is not None:
            eo = self.embedder.encode([o for o, _ in pairs])
            er = self.embedder.encode([r for _, r in pairs])
            sims = pair_keys(eo, er) @ self.keys.T
            if exclude_self:
                sims[sims > 0.9999] = -np.inf
        else:
            if greedy is None:
                raise ValueError("a plain prompt bank needs the greedy candidates as queries")
            if self._prompt_vecs is None:
                self._prompt_vecs = self.embedder.encode(self.prompts)
            sims = self.embedder.encode(list(greedy)) @ self._prompt_vecs.T
        out = []
        for row in sims:
            top = np.argsort(-row)[: k * 4]
            out.append(dedupe([self.prompts[j] for j in top], k))
        return out
