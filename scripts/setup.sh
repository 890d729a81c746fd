#!/usr/bin/env bash
# Create .venv (once) and install the pinned requirements; --dev adds the test tools.
#   bash scripts/setup.sh          # to run train.py, get_similarity_score.py, the server
#   bash scripts/setup.sh --dev    # ... and the tests
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=(-r requirements.txt)
if [[ "${1:-}" == "--dev" ]]; then
  requirements+=(-r requirements-dev.txt)
elif [[ $# -gt 0 ]]; then
  echo "usage: bash scripts/setup.sh [--dev]" >&2
  exit 2
fi

python3 -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "${requirements[@]}"
echo "ready: .venv/bin/python ($(.venv/bin/python -c 'import tensorflow as tf; print("tensorflow", tf.__version__)'))"
