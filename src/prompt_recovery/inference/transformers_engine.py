"""The transformers engine: `model.generate` in PyTorch, the reference every other engine is compared with.

    prompt-recovery recover --examples --backend transformers

Prompts (token ids from `prompting.prompt_ids`) are sorted by length and left-padded into batches;
decoding is greedy unless the caller asks otherwise (beam search and sampling for `search.candidates`
go through `generate_many`). Results come back in input order, decoded without special tokens.
"""

from __future__ import annotations

from prompt_recovery import models


class TransformersBackend:
    """Greedy (or beam/sampled) generation with a loaded torch model; see the module docstring."""

    name = "transformers"
    capacity = 0  # no fixed number of prompts in flight: batches are as large as `batch_size`

    def __init__(self, model, tokenizer):
        if model is None:
            raise ValueError("the transformers engine needs a torch model (Loaded.model is None: the weights "
                             "were loaded by another engine; pass that engine instead)")
        self.model = model
        self.tokenizer = tokenizer

    def generate(self, ids, max_new_tokens, batch_size=8, progress=False, **gen_kwargs):
        return [outs[0] for outs in self.generate_many(ids, max_new_tokens, batch_size, progress, **gen_kwargs)]

    def generate_many(self, ids, max_new_tokens, batch_size=8, progress=False, num_return_sequences=1,
                      **gen_kwargs) -> list[list[str]]:
        """`num_return_sequences` decoded continuations per prompt (greedy unless gen_kwargs say otherwise);
        prompts are sorted by length and left-padded into batches; results come back in input order."""
        import torch
        from tqdm.auto import tqdm

        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[list[str]] = [[] for _ in ids]
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        kw = {"do_sample": False, **gen_kwargs}
        bar = tqdm(total=len(ids), unit="pair", disable=not progress, desc="recover")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(ids[i]) for i in idx)
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding
                input_ids[row, width - len(ids[i]):] = torch.tensor(ids[i])
                mask[row, width - len(ids[i]):] = 1
            with torch.inference_mode():
                gen = self.model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                          max_new_tokens=max_new_tokens, pad_token_id=pad,
                                          eos_token_id=tok.eos_token_id, num_return_sequences=num_return_sequences,
                                          **kw)
            for row, i in enumerate(idx):
                for j in range(num_return_sequences):
                    out[i].append(tok.decode(gen[row * num_return_sequences + j, width:], skip_special_tokens=True))
            bar.update(len(idx))
        bar.close()
        return out


def load_transformers(model: str, adapter: str | None = "default", device: str = "auto", dtype: str = "auto"):
    """(Loaded, TransformersBackend): the one model loader (`models.load`, adapter merged) and its engine."""
    loaded = models.load(model, adapter, device, dtype)
    return loaded, TransformersBackend(loaded.model, loaded.tokenizer)
