#!/usr/bin/env bash
# Set up, train the default model on the built-in synthetic scenes, export it, then score a scene it has not seen
# against its true caption, the relation reversed and one colour changed; it says what the scores read and which
# commands to try next.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
.venv/bin/python train.py "$@"
.venv/bin/python scripts/draw_example.py --output checkpoints/example.png --model_dir checkpoints/export
