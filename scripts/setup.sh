#!/usr/bin/env bash
# Create .venv (once), install the pinned requirements and the project (editable); --dev adds the test tools.
#   bash scripts/setup.sh          # to run train.py, get_similarity_score.py, the server
#   bash scripts/setup.sh --dev    # ... and the tests, with Debian's chromium + chromium-driver where apt exists
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=(-r requirements.txt)
if [[ "${1:-}" == "--dev" ]]; then
  requirements+=(-r requirements-dev.txt)
elif [[ $# -gt 0 ]]; then
  echo "usage: bash scripts/setup.sh [--dev]" >&2
  exit 2
fi

# The search page's browser test drives headless Chromium; install it where apt can (root, or sudo without a
# password). Elsewhere that one test is skipped with a message saying what to install.
install_chromium() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
  command -v apt-get >/dev/null || { echo "no apt-get: install chromium and chromedriver yourself" >&2; return 0; }
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo -n true 2>/dev/null || { echo "not root: sudo apt-get install chromium chromium-driver" >&2; return 0; }
    sudo=(sudo -n)
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null
}
if [[ "${1:-}" == "--dev" ]]; then
  install_chromium
fi

python3 -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "${requirements[@]}"
# The project itself, editable: its commands (captioning-train, -score, -serve, -search, -evaluate) land in
# .venv/bin and the scripts import the package from this folder. Its dependencies are the pins just installed.
.venv/bin/python -m pip install --quiet --no-deps -e .
echo "ready: .venv/bin/python ($(.venv/bin/python -c 'from captioning.util import cli; cli.quiet_start(); import tensorflow as tf; print("tensorflow", tf.__version__)'))"  # quiet: no TF start-up lines
