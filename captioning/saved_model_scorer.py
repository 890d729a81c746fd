"""Scoring with an exported SavedModel in this process: exactly the numbers TF Serving would return."""

import os

import numpy as np
import tensorflow as tf

from captioning.export import EXTRA_FILES_DIR


class ModelNotFoundError(FileNotFoundError):
    pass


def resolve_version_dir(model_dir: str) -> str:
    """A version directory itself, or the newest integer version under an export base directory."""
    if os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        return model_dir
    versions = sorted((int(d) for d in os.listdir(model_dir) if d.isdigit()), reverse=True) \
        if os.path.isdir(model_dir) else []
    for version in versions:
        path = os.path.join(model_dir, str(version))
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return path
    raise ModelNotFoundError(f"no exported SavedModel in {model_dir} (expected {model_dir}/<version>/saved_model.pb;"
                             " run python train.py first)")


def _numpy(outputs: dict) -> dict:
    return {name: value.numpy() for name, value in outputs.items()}


class SavedModelScorer:
    """Calls the SavedModel's signatures; `score` and `score_matrix` match the served model's outputs."""

    def __init__(self, model_dir: str):
        self.path = resolve_version_dir(model_dir)
        self.model = tf.saved_model.load(self.path)

    def score(self, image_bytes, texts, batch_size: int = 256) -> dict:
        """Row-aligned pairs -> serving_default outputs as numpy arrays, in batches of `batch_size`."""
        signature = self.model.signatures["serving_default"]
        parts = [_numpy(signature(image_bytes=tf.constant(image_bytes[i:i + batch_size], tf.string),
                                  text=tf.constant(texts[i:i + batch_size], tf.string)))
                 for i in range(0, len(texts), batch_size)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def score_matrix(self, image_bytes, texts) -> dict:
        return _numpy(self.model.signatures["score_matrix"](image_bytes=tf.constant(image_bytes, tf.string),
                                                            text=tf.constant(texts, tf.string)))

    def extra_file(self, name: str) -> str:
        """A file exported beside the model (config.json, vocabulary.txt, training_metadata.json)."""
        return os.path.join(self.path, EXTRA_FILES_DIR, name)
