#!/usr/bin/env bash
# Set up, train the default model on the built-in synthetic scenes, export it, then score an unseen example
# image against a matching and a non-matching text.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
.venv/bin/python train.py "$@"
mapfile -t captions < <(.venv/bin/python scripts/draw_example.py --output checkpoints/example.png)
echo "scoring checkpoints/example.png against \"${captions[0]}\" (true) and \"${captions[1]}\" (colour swapped)"
.venv/bin/python get_similarity_score.py --image_path checkpoints/example.png \
  --text "${captions[0]}" --text "${captions[1]}"
