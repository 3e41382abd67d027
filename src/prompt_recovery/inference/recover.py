"""Recover the instruction behind a rewrite: the `Recoverer` API and the `recover` command.

    prompt-recovery recover --original "The meeting is at 3pm." --rewritten "Arr, the meetin' be at 3 bells!"
    prompt-recovery recover --examples          # the bundled example pairs
    prompt-recovery recover --examples --select first --no-prototypes      # the plain greedy answers (~10x faster)
    python -c "from prompt_recovery import Recoverer; print(Recoverer.load().recover('a', 'b'))"

The command reranks by default: the model's answer against one generic instruction per family, chosen by the base
model's likelihood of the rewrite (`search.likelihood`); the `Recoverer` API and `predict` return the plain answer.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Sequence

from prompt_recovery import models
from prompt_recovery.config import ModelOptions, opt
from prompt_recovery.errors import UserError
from prompt_recovery.inference import engines
from prompt_recovery.inference.engines import Engine
from prompt_recovery.inference.transformers_engine import TransformersBackend
from prompt_recovery.prompting import PromptFormat, check_pair, from_meta, postprocess, prompt_ids
from prompt_recovery.schema import read_text_file
from prompt_recovery.search.search import (FAMILY_PRIOR_HELP, PROTOTYPES_HELP, SELECT, SELECT_HELP, SearchOptions,
                                          check_options, read_suffix, wrap)
from prompt_recovery.scoring.suite import load_examples


class Recoverer:
    """A loaded recovery model. Thread-compatible, not thread-safe: serialise calls.

    `engine` generates (an `engines.Engine`: `TransformersBackend`, `LlamaCppBackend` or `VLLMBackend`;
    given `engine=None`, the transformers engine on `loaded.model`); `backend` is its name, as `--backend`
    takes it. `model` is the torch model (`loaded.model`): None where llama.cpp or vLLM holds the weights,
    so generate through `engine` (or `generate_ids`), never through `model`."""

    def __init__(self, loaded: models.Loaded, prompt_format: PromptFormat, max_new_tokens: int = 48,
                 batch_size: int = 8, *, engine: Engine | None = None):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.prompt_format = prompt_format
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.engine: Engine = engine or TransformersBackend(loaded.model, loaded.tokenizer)

    @property
    def backend(self) -> str:
        """The engine's name: "transformers", "llama-cpp" or "vllm"."""
        return self.engine.name

    @classmethod
    def load(cls, model: str = "smollm2-135m", adapter: str | None = "default", prompt_format: str | None = None,
             device: str = "auto", dtype: str = "auto", max_new_tokens: int = 48, batch_size: int = 8,
             backend: str = "auto") -> "Recoverer":
        """Load a model for recovery on the engine `backend` names (`engines.BACKENDS`: auto, transformers,
        llama-cpp, vllm); the prompt format is the adapter's unless `prompt_format` says otherwise."""
        loaded, engine = engines.load(backend, model, adapter, device, dtype)
        fmt = from_meta(loaded.adapter_meta.get("prompt_format", {}), loaded.tokenizer, prompt_format)
        return cls(loaded, fmt, max_new_tokens, batch_size, engine=engine)

    @classmethod
    def from_options(cls, o: ModelOptions) -> "Recoverer":
        return cls.load(o.model, o.adapter, o.prompt_format, o.device, o.dtype, o.max_new_tokens, o.batch_size,
                        o.backend)

    def describe(self) -> str:
        return f"{self.loaded.describe()}, prompt format {self.prompt_format.name}, backend {self.backend}"

    def prompt_ids(self, original: str, rewritten: str) -> list[int]:
        return prompt_ids(self.tokenizer, original, rewritten, self.prompt_format)

    def recover(self, original: str, rewritten: str) -> str:
        """The recovered instruction for one pair: one non-empty line."""
        return self.recover_batch([(original, rewritten)])[0]

    def recover_batch(self, pairs: Sequence[tuple[str, str]], batch_size: int | None = None,
                      progress: bool = False) -> list[str]:
        """Instructions for many pairs, in input order; batches are formed by prompt length."""
        for o, r in pairs:
            check_pair(o, r)
        ids = [self.prompt_ids(o, r) for o, r in pairs]
        raw = self.generate_ids(ids, batch_size or self.batch_size, progress)
        return [postprocess(t) for t in raw]

    def generate_ids(self, ids: list[list[int]], batch_size: int, progress: bool = False,
                     **gen_kwargs) -> list[str]:
        """Greedy generation for tokenised prompts; returns decoded new text, input order."""
        return self.engine.generate(ids, self.max_new_tokens, batch_size, progress, **gen_kwargs)


def load_recoverer(cfg):
    """The recovery model of a config with `ModelOptions` + `SearchOptions` fields (`recover`, `predict`): a
    `Recoverer`, wrapped in a `search.SearchRecoverer` when search options (--candidates, --bank, --suffix)
    are set. Bad search options fail before the model loads."""
    check_options(cfg)
    read_suffix(cfg)  # fail on a bad suffix file before loading the model
    if (cfg.candidates > 1) and cfg.backend == "auto":
        cfg.backend = "transformers"  # beam search / sampling need the transformers engine
    elif cfg.candidates > 1 and cfg.backend == "llama-cpp":
        raise UserError("--candidates above 1 needs --backend transformers (llama-cpp does greedy decoding only)")
    r = Recoverer.from_options(cfg)
    out = wrap(r, cfg)
    if out is not r:
        print(f"search: {out.describe()}", file=sys.stderr)
    return out


# ---------------------------------------------------------------- the `recover` command

@dataclass
class RecoverConfig(ModelOptions, SearchOptions):
    # recover answers a few pairs at a time, so it reranks by default: the model's answer against one generic
    # instruction per family, kept unless one explains the rewrite better (docs/quality.md, sessions 7-10 and 17: with
    # the shipped adapter (session 14's), 96 rewrite tokens, margin 0.05, the length prior and the family prior at
    # weight 2, family accuracy 0.58 -> 0.87 on the suite, 0.60 -> 0.77 / 0.58 -> 0.71 / 0.66 -> 0.80 / 0.56 -> 0.70 on
    # suites B-E, held-out level under both scorers). `--select first --no-prototypes` is the plain greedy answer
    # (what `predict` and `serve` return by default, ~10x faster).
    prototypes: bool = opt(True, PROTOTYPES_HELP)
    select: str = opt("likelihood", SELECT_HELP, choices=SELECT)
    family_prior: bool = opt(True, FAMILY_PRIOR_HELP)
    original: str | None = opt(None, "original text")
    rewritten: str | None = opt(None, "rewritten text")
    original_file: str | None = opt(None, "read the original text from this UTF-8 file")
    rewritten_file: str | None = opt(None, "read the rewritten text from this UTF-8 file")
    examples: bool = opt(False, "recover the bundled example pairs instead (shows the true instruction too)")
    json: bool = opt(False, "print a JSON object instead of the bare instruction")


def _pair_from_config(cfg: RecoverConfig) -> tuple[str, str]:
    texts = {}
    for name in ("original", "rewritten"):
        value, path = getattr(cfg, name), getattr(cfg, f"{name}_file")
        if value is not None and path is not None:
            raise UserError(f"give either --{name} or --{name}-file, not both")
        if path is not None:
            value = read_text_file(path, name)
        if value is None:
            raise UserError(f"missing --{name} (or --{name}-file); see `prompt-recovery recover --help`")
        texts[name] = value
    check_pair(texts["original"], texts["rewritten"])
    return texts["original"], texts["rewritten"]


def run(cfg: RecoverConfig) -> int:
    if cfg.examples:
        rows = load_examples()
        pairs = [(r["original_text"], r["rewritten_text"]) for r in rows]
    else:
        pairs = [_pair_from_config(cfg)]
    r = load_recoverer(cfg)  # a plain Recoverer unless search options (--candidates, --bank, --suffix) are set
    outs = r.recover_batch(pairs)
    details = getattr(r, "last_details", None) or [{}] * len(outs)
    if cfg.examples:
        for k, (row, out) in enumerate(zip(rows, outs)):
            if cfg.json:
                print(json.dumps({"id": row["id"], "rewrite_prompt": out, "true_prompt": row["rewrite_prompt"],
                                  **details[k]}))
            else:
                print(f"[{row['id']}] recovered: {out}\n{' ' * (len(row['id']) + 3)}truth:     {row['rewrite_prompt']}")
        return 0
    if cfg.json:
        print(json.dumps({"rewrite_prompt": outs[0], "model": r.describe(), **details[0]}))
    else:
        print(outs[0])
    sys.stdout.flush()
    return 0
