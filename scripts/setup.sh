#!/usr/bin/env bash
# Set up akd in ./.venv (idempotent).
#  * keeps a torch that is already importable (e.g. a CUDA build on a GPU machine:
#    the venv sees system site-packages);
#  * otherwise installs torch==2.13.0 (the local CPU build on machines without a GPU,
#    never the multi-GB CUDA build), or the default build where nvidia-smi sees a GPU;
#  * installs akd in editable mode with the extras in $AKD_EXTRAS (default: test; `make test` adds ray,
#    so the Ray backend's tests run against a real local Ray instead of being skipped);
#  * makes Fashion-MNIST available (Debian's dataset-fashion-mnist when apt is usable,
#    otherwise akd downloads it with checksum verification on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$VPY" -m pip install -q torch
  else
    "$VPY" -m pip install -q "torch==2.13.0"
  fi
fi
"$VPY" -m pip install -q -e ".[${AKD_EXTRAS:-test}]"
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/train-images-idx3-ubyte.gz" ] && [ -z "${AKD_DATA_DIR:-}" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
      || echo "setup: could not install dataset-fashion-mnist with apt; akd will try to download Fashion-MNIST" >&2
  fi
fi
