"""The vLLM engine (optional, GPU): the LoRA adapter applied per request, the same prompt token ids.

    pip install -e ".[vllm]"
    prompt-recovery predict test.csv -o submission.csv --backend vllm --model mistral-7b-instruct-v0.2 --adapter DIR

Greedy decoding (temperature 0) up to the tokenizer's EOS; needs CUDA and the `vllm` package
(pyproject.toml's `vllm` extra says which release). tests/test_backend.py compares it with the
transformers engine on a GPU.
"""

from __future__ import annotations

import importlib.util

from prompt_recovery import models
from prompt_recovery.errors import UserError


class VLLMBackend:
    """vLLM engine with the LoRA adapter applied per request (`LoRARequest`); same prompt token ids."""

    name = "vllm"
    capacity = 0  # vLLM schedules its own batches

    def __init__(self, source: str, tokenizer, adapter: str | None = None, max_lora_rank: int = 64,
                 gpu_memory_utilization: float = 0.85, dtype: str = "auto"):
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.tokenizer = tokenizer
        self.llm = LLM(model=source, tokenizer=source, enable_lora=adapter is not None, max_lora_rank=max_lora_rank,
                       gpu_memory_utilization=gpu_memory_utilization, dtype=dtype)
        self.lora = LoRARequest("prompt-recovery", 1, adapter) if adapter else None

    def generate_many(self, ids, max_new_tokens, batch_size=8, progress=False, num_return_sequences=1,
                      **gen_kwargs) -> list[list[str]]:
        """One greedy continuation per prompt; several (beam search, sampling) are the transformers engine's."""
        if num_return_sequences != 1 or gen_kwargs:
            raise UserError("--candidates above 1 needs beam search or sampling, which the vllm backend does not "
                            "offer here; use --backend transformers")
        return [[t] for t in self.generate(ids, max_new_tokens, batch_size, progress)]

    def generate(self, ids, max_new_tokens, batch_size=8, progress=False, **gen_kwargs):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens,
                                stop_token_ids=[self.tokenizer.eos_token_id])
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(x)) for x in ids], params,
                                 lora_request=self.lora, use_tqdm=progress)
        return [self.tokenizer.decode(o.outputs[0].token_ids, skip_special_tokens=True) for o in outs]


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def load_vllm(model: str, adapter: str | None = "default", dtype: str = "auto"):
    """(Loaded without a torch model, VLLMBackend): vLLM needs CUDA and the `vllm` package."""
    import torch

    if not vllm_available():
        raise UserError("the vllm backend needs the vllm package: pip install 'prompt-recovery[vllm]'")
    if not torch.cuda.is_available():
        raise UserError("the vllm backend needs a CUDA GPU; use --backend transformers on this machine")
    source, _ = models.resolve_source(model)
    adapter_path = models.resolve_adapter(model, adapter)
    tok = models.load_tokenizer(model)
    engine = VLLMBackend(source, tok, adapter_path, dtype=dtype)
    loaded = models.Loaded(None, tok, model, source, adapter_path, models.model_meta(source, adapter_path), "cuda",
                           dtype)
    return loaded, engine
