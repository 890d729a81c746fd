"""Scoring with an exported SavedModel in this process: exactly the numbers TF Serving would return."""

import os

import tensorflow as tf

from captioning.export.layout import EXTRA_FILES_DIR, SAVED_MODEL_FILE
from captioning.inference.rows import run_in_batches
from captioning.util.errors import NotFound


class ModelNotFoundError(NotFound, FileNotFoundError):
    pass


def resolve_version_dir(model_dir: str) -> str:
    """A version directory itself, or the newest integer version under an export base directory."""
    if os.path.exists(os.path.join(model_dir, SAVED_MODEL_FILE)):
        return model_dir
    versions = (
        sorted((int(d) for d in os.listdir(model_dir) if d.isdigit()), reverse=True) if os.path.isdir(model_dir) else []
    )
    for version in versions:
        path = os.path.join(model_dir, str(version))
        if os.path.exists(os.path.join(path, SAVED_MODEL_FILE)):
            return path
    raise ModelNotFoundError(
        f"no exported SavedModel in {model_dir} (expected {model_dir}/<version>/saved_model.pb;"
        " run python train.py first)"
    )


class SavedModelScorer:
    """Calls the SavedModel's signatures; `score` and `score_matrix` match the served model's outputs."""

    def __init__(self, model_dir: str):
        self.path = resolve_version_dir(model_dir)
        self.model = tf.saved_model.load(self.path)

    def run(self, name: str, inputs: dict) -> dict:
        """Signature `name` on inputs given as lists of bytes/str (DT_STRING) or numpy arrays/scalars of the
        signature's dtype; its outputs as numpy arrays."""
        tensors = {
            key: tf.constant(value, tf.string) if isinstance(value, list) else tf.constant(value)
            for key, value in inputs.items()
        }
        return {key: value.numpy() for key, value in self._signature(name)(**tensors).items()}

    def _signature(self, name: str):
        return self.model.signatures[name]

    def score(self, image_bytes, texts, batch_size: int = 256) -> dict:
        """Row-aligned pairs -> serving_default outputs as numpy arrays, in batches of `batch_size`."""
        return run_in_batches(
            self, "serving_default", {"image_bytes": list(image_bytes), "text": list(texts)}, batch_size
        )

    def score_matrix(self, image_bytes, texts) -> dict:
        return self.run("score_matrix", {"image_bytes": list(image_bytes), "text": list(texts)})

    def extra_file(self, name: str) -> str:
        """A file exported beside the model (config.json, vocabulary.txt, training_metadata.json)."""
        return os.path.join(self.path, EXTRA_FILES_DIR, name)


class ModuleScorer(SavedModelScorer):
    """SavedModelScorer's calls on a ScoringModule in memory, e.g. around the model being trained: the numbers its
    export would give, read from the live weights."""

    def __init__(self, module):
        self.path, self.model = None, module

    def _signature(self, name: str):
        return getattr(self.model, name)
