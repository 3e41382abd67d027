"""Generation engines behind `Recoverer`: one interface, the choice of engine (`--backend`), and loading.

    prompt-recovery recover --examples --backend llama-cpp      # fast path (the default where installed)
    prompt-recovery recover --examples --backend transformers   # reference path

An engine turns tokenised prompts into decoded new text with greedy decoding, stopping at the
tokenizer's EOS token (`Engine`):

    engine.generate(list_of_prompt_token_ids, max_new_tokens) -> list[str]

Every engine receives the SAME prompt token ids (built by `prompting.prompt_ids` with the Hugging
Face tokenizer) and decodes the generated ids with the same tokenizer, so post-processing sees the
same kind of text.

Engines (`--backend`):
  * ``transformers`` (`transformers_engine`) – `model.generate` in PyTorch, batched by prompt
    length. The reference: tests compare the others against it. The only one with beam search and
    sampling (`generate_many`, used by `search.candidates`).
  * ``llama-cpp`` (`llama_cpp_engine`) – llama.cpp with its OpenBLAS backend (`cpu_probe`) on a
    GGUF file with the adapter merged in (`gguf_merge`): a pool of workers on one shared model.
    Needs a GGUF-backed model: the ``smollm2-135m`` preset or a ``.gguf`` file.
  * ``vllm`` (`vllm_engine`, optional, GPU) – vLLM with the adapter applied per request.
  * ``auto`` (default) – ``llama-cpp`` when it is installed and the model is GGUF-backed (float32,
    CPU), else ``transformers`` (with a one-line notice on stderr when only the engine is missing).

`load` returns the model description (`models.Loaded`) and its engine together; the engine is
always there, while `Loaded.model` (the torch model) is None where llama.cpp or vLLM holds the
weights. Measurements behind the defaults (speed, agreement with the reference, memory): docs/speed.md.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from prompt_recovery import models
from prompt_recovery.errors import UserError, notice
from prompt_recovery.inference import cpu_probe
from prompt_recovery.inference.gguf_merge import gguf_source
from prompt_recovery.inference.llama_cpp_engine import load_llama_cpp
from prompt_recovery.inference.transformers_engine import load_transformers
from prompt_recovery.inference.vllm_engine import load_vllm

BACKENDS = ("auto", "transformers", "llama-cpp", "vllm")


class Engine(Protocol):
    """What every engine offers (`TransformersBackend`, `LlamaCppBackend`, `VLLMBackend`)."""

    name: str  # as --backend takes it
    tokenizer: object  # the Hugging Face tokenizer whose ids `generate` takes and decodes with
    capacity: int  # prompts it keeps in flight at once (0: no fixed number); predict sizes its chunks by it

    def generate(self, ids: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int = 8,
                 progress: bool = False, **gen_kwargs) -> list[str]:
        """Greedy continuation of each prompt (token ids), decoded without special tokens, input order."""

    def generate_many(self, ids: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int = 8,
                      progress: bool = False, num_return_sequences: int = 1, **gen_kwargs) -> list[list[str]]:
        """`num_return_sequences` continuations per prompt (beam search or sampling through `gen_kwargs`);
        an engine that only decodes greedily raises a one-line UserError for more than one."""


def choose(backend: str, model: str, device: str = "auto", dtype: str = "auto") -> str:
    """The backend to use: 'transformers', 'llama-cpp' or 'vllm' (see module docstring)."""
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend in ("transformers", "vllm"):
        return backend
    on_gpu = device not in (None, "auto", "cpu")
    if backend == "llama-cpp":
        problem = cpu_probe.llama_cpp_problem()
        if problem == "not installed":
            raise UserError(f"the llama-cpp backend needs llama-cpp-python: {cpu_probe.LLAMA_CPP_INSTALL} "
                            f"(or use --backend transformers)")
        if problem:
            raise UserError(f"the llama-cpp backend cannot use llama-cpp-python, {problem} "
                            f"(or use --backend transformers)")
        if on_gpu:
            raise UserError("the llama-cpp backend runs on the CPU here; use --device cpu or --backend transformers")
        if gguf_source(model) is None:
            raise UserError(f"the llama-cpp backend needs a GGUF-backed model (smollm2-135m or a .gguf file), "
                            f"not {model!r}; use --backend transformers")
        return backend
    # auto: llama.cpp only for its float32 CPU case
    if on_gpu or dtype not in (None, "auto", "float32", "fp32") or gguf_source(model) is None:
        return "transformers"
    if device in (None, "auto"):
        import torch

        if torch.cuda.is_available():
            return "transformers"
    problem = cpu_probe.llama_cpp_problem()
    if problem == "not installed":
        notice("llama-cpp-python is not installed; using the slower transformers backend "
               f"({cpu_probe.LLAMA_CPP_INSTALL})")
        return "transformers"
    if problem:
        notice(f"llama-cpp-python is installed but {problem}; using the slower transformers backend")
        return "transformers"
    return "llama-cpp"


def load(backend: str, model: str, adapter: str | None = "default", device: str = "auto",
         dtype: str = "auto") -> tuple[models.Loaded, Engine]:
    """(Loaded, engine) for a --backend value: the chosen engine, or under ``auto`` the transformers engine
    when the llama.cpp one cannot load this model (a one-line notice says why)."""
    models.resolve_adapter(model, adapter)  # bad adapter paths are the user's error, whatever the engine
    chosen = choose(backend, model, device, dtype)
    if chosen == "vllm":
        return load_vllm(model, adapter, dtype)
    if chosen == "llama-cpp":
        try:
            return load_llama_cpp(model, adapter)
        except UserError as e:
            if backend != "auto":
                raise
            notice(f"{e}; falling back to the transformers backend")
    return load_transformers(model, adapter, device, dtype)
