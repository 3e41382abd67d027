"""The inference stage: load a recovery model on an engine and recover instructions for pairs.

    prompt-recovery recover --examples
    prompt-recovery predict test.csv -o submission.csv

Modules: `recover` (the `Recoverer` API and the `recover` command), `predict` (batch prediction,
resumable), `engines` (the engine interface, `--backend` choice and loading), one module per engine
(`transformers_engine`, `llama_cpp_engine`, `vllm_engine`), and what the llama.cpp engine needs:
`cpu_probe` (llama-cpp-python, OpenBLAS kernels, idle cores) and `gguf_merge` (the adapter merged
into a GGUF file, also used by `export --format gguf`).
"""
