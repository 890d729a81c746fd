"""A trained model as a directory of readable parts: config.json, vocabulary.txt, model.weights.h5,
training_metadata.json and training_curves.png. Every file is written to a temporary name and renamed into
place, so an interrupted run never leaves a half-written file behind."""

import json
import os

from captioning.config import ModelConfig
from captioning.text import Vocabulary

CONFIG_FILE, VOCABULARY_FILE, WEIGHTS_FILE = "config.json", "vocabulary.txt", "model.weights.h5"
METADATA_FILE, CURVES_FILE = "training_metadata.json", "training_curves.png"


def write_text_atomically(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)


def save_trained_model(model_dir: str, model, vocabulary: Vocabulary, metadata: dict) -> None:
    os.makedirs(model_dir, exist_ok=True)
    write_text_atomically(os.path.join(model_dir, CONFIG_FILE), model.config.to_json())
    write_text_atomically(os.path.join(model_dir, VOCABULARY_FILE), "\n".join(vocabulary.tokens) + "\n")
    write_text_atomically(os.path.join(model_dir, METADATA_FILE), json.dumps(metadata, indent=2))
    temporary = os.path.join(model_dir, f"model.tmp{os.getpid()}.weights.h5")  # Keras wants this suffix
    model.save_weights(temporary)
    os.replace(temporary, os.path.join(model_dir, WEIGHTS_FILE))
    if metadata.get("history"):
        plot_training_curves(metadata["history"], os.path.join(model_dir, CURVES_FILE))


def load_trained_model(model_dir: str):
    """-> (Captioner with its trained weights, Vocabulary)."""
    from captioning.model.captioner import Captioner  # keeps this module light for readers of metadata

    config = ModelConfig.load(os.path.join(model_dir, CONFIG_FILE))
    vocabulary = Vocabulary.load(os.path.join(model_dir, VOCABULARY_FILE))
    model = Captioner(config)
    model.load_weights(os.path.join(model_dir, WEIGHTS_FILE))
    return model, vocabulary


def plot_training_curves(history: list, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(steps, [h[f"train_{metric}"] for h in history], marker="o", label="train (last batch)")
        if all(f"val_{metric}" in h for h in history):
            axis.plot(steps, [h[f"val_{metric}"] for h in history], marker="o", label="validation")
        axis.set_xlabel("step")
        axis.set_title(f"token {metric}")
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    temporary = f"{path}.tmp{os.getpid()}.png"
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)
