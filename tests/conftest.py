"""Shared fixtures: tiny models that the tests train themselves, quickly, on synthetic scenes."""

import os

import pytest

from captioning.data import synthetic
from tests.helpers import train_model

# Commands the tests start (scripts/*.py import the installed package) read this checkout, not an installed copy.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """A run directory holding a tiny trained model: config.json, vocabulary.txt, model.weights.h5, export/1/."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    train_model(run_dir)
    return str(run_dir)


@pytest.fixture(scope="session")
def tiny_export_dir(tiny_run_dir):
    """The export base directory of the tiny model (version 1 inside), as TF Serving would be given it."""
    return os.path.join(tiny_run_dir, "export")


@pytest.fixture(scope="session")
def tiny_model(tiny_run_dir):
    """(Captioner, Vocabulary) of the tiny model, in memory."""
    from captioning.training.artifacts import load_trained_model

    return load_trained_model(tiny_run_dir)


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory):
    """Three synthetic scene images written as PNG, JPEG and BMP files: (paths, scenes)."""
    directory = tmp_path_factory.mktemp("images")
    scenes = synthetic.generate_scenes(3, seed=99)
    paths = []
    for scene, extension in zip(scenes, ("png", "jpg", "bmp")):
        path = str(directory / f"scene.{extension}")
        synthetic.render_scene(scene, 32).save(path)
        paths.append(path)
    return paths, scenes


@pytest.fixture(scope="session")
def sample_features(tiny_model, sample_images):
    """The tiny model's encoder features of the sample scenes, rendered at its image size: [3, G, D]."""
    import tensorflow as tf

    model, _ = tiny_model
    _, scenes = sample_images
    size = model.config.image_size
    images = tf.stack([tf.io.decode_png(synthetic.render_scene_png(scene, size)) for scene in scenes])
    return model.encode_images(tf.cast(images, tf.float32))
