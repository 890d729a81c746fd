"""A trained model as a directory of readable parts: config.json, vocabulary.txt, model.weights.h5,
training_metadata.json and training_curves.png, each written whole or not at all (captioning.util.atomic)."""

import json
import os

from captioning.data.text import Vocabulary
from captioning.export.layout import CONFIG_FILE, METADATA_FILE, VOCABULARY_FILE
from captioning.model.config import ModelConfig
from captioning.util import atomic

WEIGHTS_FILE, CURVES_FILE = "model.weights.h5", "training_curves.png"


def save_trained_model(model_dir: str, model, vocabulary: Vocabulary, metadata: dict) -> None:
    atomic.write_text(os.path.join(model_dir, CONFIG_FILE), model.config.to_json())
    vocabulary.save(os.path.join(model_dir, VOCABULARY_FILE))
    atomic.write_text(os.path.join(model_dir, METADATA_FILE), json.dumps(metadata, indent=2))
    with atomic.replaced_on_success(os.path.join(model_dir, WEIGHTS_FILE)) as temporary:
        model.save_weights(temporary)
    if metadata.get("history"):
        from captioning.util.figures import (
            draw_training_curves,  # matplotlib: only when there is a curve to draw
        )

        draw_training_curves(os.path.join(model_dir, CURVES_FILE), metadata["history"])


def load_trained_model(model_dir: str):
    """-> (Captioner with its trained weights, Vocabulary)."""
    from captioning.model.captioner import (
        Captioner,  # keeps this module light for readers of metadata
    )

    config = ModelConfig.load(os.path.join(model_dir, CONFIG_FILE))
    vocabulary = Vocabulary.load(os.path.join(model_dir, VOCABULARY_FILE))
    model = Captioner(config)
    model.load_weights(os.path.join(model_dir, WEIGHTS_FILE))
    return model, vocabulary
