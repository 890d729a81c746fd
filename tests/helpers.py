"""Test helpers: tiny model settings, training on synthetic scenes, image files."""

import os

from PIL import Image

from captioning.data.datasets import ensure_synthetic_dataset
from captioning.model.config import ModelConfig
from captioning.training.config import TrainingConfig

TINY_MODEL = ModelConfig(max_length=16, image_size=32, embed_dim=32, num_heads=2, num_layers=1, ff_dim=64,
                         dropout=0.0, image_dropout=0.2, contrastive_dim=16)
TINY_TRAINING = TrainingConfig(global_batch_size=16, epochs=1, steps_per_epoch=12, learning_rate=3e-3,
                               warmup_steps=2, checkpoint_every_steps=6, validation_steps=2)


def synthetic_dataset(directory, num_images=60, seed=0, image_size=32):
    return ensure_synthetic_dataset(str(directory), num_images, seed, image_size)


def train_model(output_dir, model_config=TINY_MODEL, training_config=TINY_TRAINING, num_images=60, **kwargs):
    """Trains on synthetic scenes with run_training (the code path of train.py); returns the export path."""
    from captioning.training.run import run_training

    data_dir = os.path.join(str(output_dir), "data")
    annotations = synthetic_dataset(data_dir, num_images, image_size=model_config.image_size)
    return run_training(model_config, training_config, "coco", annotations, os.path.join(data_dir, "images"),
                        str(output_dir), log=lambda *_: None, **kwargs)


def write_image(path, size=(32, 32), color=(200, 30, 30)):
    Image.new("RGB", size, color).save(path)
    return str(path)
