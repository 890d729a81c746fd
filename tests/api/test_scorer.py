"""captioning.Scorer: every image against every text in one call, from any image form, local or served, with
one-line errors; its numbers are the model's own signatures'."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import captioning
from captioning.api import ScorerInputError
from captioning.data import synthetic
from captioning.inference import runners
from captioning.inference.zero_shot import DEFAULT_TEMPLATE
from tests.helpers import CHILD_TIMEOUT

TEXTS = ["a red square", "a blue circle left of a green star", "two yellow crosses"]


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    from tests.fake_model import export_fake_model

    base = tmp_path_factory.mktemp("fake_export")
    export_fake_model(str(base), 1)
    return str(base)


@pytest.fixture(scope="module")
def fake(fake_dir):
    return captioning.Scorer(fake_dir)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three PNG files of synthetic scenes."""
    folder = tmp_path_factory.mktemp("scenes")
    paths = []
    for n, scene in enumerate(synthetic.generate_scenes(3, seed=7)):
        paths.append(str(folder / f"scene{n}.png"))
        synthetic.render_scene(scene, 32).save(paths[-1])
    return paths


def test_importing_captioning_loads_no_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, captioning; captioning.Scorer; print('tensorflow' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.stdout.strip() == "False", result.stderr


def test_an_images_by_texts_array_equal_to_the_score_matrix_signature(fake, fake_dir, scenes):
    scores = fake(images=scenes, texts=TEXTS)
    assert scores.shape == (3, 3) and scores.dtype == np.float32
    with open(scenes[1], "rb") as file:
        direct = runners.open_model(fake_dir).run("score_matrix", {"image_bytes": [file.read()], "text": TEXTS})
    np.testing.assert_allclose(scores[1], direct["log_likelihood"][0], rtol=1e-6)
    for score in ("mean_log_prob", "pmi", "contrastive"):
        np.testing.assert_allclose(fake(scenes[1:2], TEXTS, score=score)[0], direct[score][0], rtol=1e-6)


def test_every_image_form_gives_the_same_scores(fake, scenes):
    path = scenes[0]
    with open(path, "rb") as file:
        encoded = file.read()
    with Image.open(path) as opened:
        pil = opened.copy()
    pixels = np.asarray(pil.convert("RGB"))
    forms = [path, encoded, pil, pixels, pixels / 255.0]
    scores = fake(images=forms, texts=TEXTS)
    for row in scores[1:]:
        np.testing.assert_allclose(row, scores[0], rtol=1e-6)
    np.testing.assert_allclose(fake(images=path, texts=TEXTS[0]), scores[:1, :1])  # one image, one text: [1, 1]


def test_each_image_is_sent_once(fake, scenes, monkeypatch):
    sent = []
    run = fake.model.run
    monkeypatch.setattr(
        fake.model, "run", lambda name, inputs: sent.append(len(inputs["image_bytes"])) or run(name, inputs)
    )
    fake(images=scenes * 4, texts=TEXTS)  # 12 images, 3 texts: blocks of 8 images, each with every text
    assert sent == [8, 4]


def test_contrastive_is_the_dot_product_of_the_embeddings(fake, scenes):
    images, texts = fake.embed_images(scenes), fake.embed_texts(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(images @ texts.T, fake(scenes, TEXTS, score="contrastive"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s, img: s(images=["/no/such.png"], texts=TEXTS), "image 0: no such file /no/such.png"),
        (lambda s, img: s(images=[img, b"not an image"], texts=TEXTS), "image 1: not a readable image"),
        (lambda s, img: s(images=[img], texts=[]), "no texts: give at least one"),
        (lambda s, img: s(images=[], texts=TEXTS), "no images: give at least one"),
        (lambda s, img: s(images=[img], texts=["a cat", " ... "]), "text ' ... ' has no words to score"),
        (
            lambda s, img: s(images=[img], texts=TEXTS, score="pmii"),
            "unknown score 'pmii': choose one of log_likelihood, mean_log_prob, pmi, contrastive",
        ),
        (lambda s, img: s(images=[np.zeros((4, 4, 2), np.uint8)], texts=TEXTS), "image 0: an array must be H x W"),
        (lambda s, img: s(images=[np.full((4, 4), 2.0)], texts=TEXTS), "image 0: a float array must hold values in"),
        (lambda s, img: s(images=[42], texts=TEXTS), "image 0: give a path, encoded bytes, a PIL image or a numpy"),
        (lambda s, img: s.labels(img, []), "no texts: give at least one"),
        (lambda s, img: s.caption([img], beam_size=0), "beam_size must be at least 1"),
    ],
)
def test_bad_input_is_one_line_naming_it(fake, scenes, call, message):
    with pytest.raises(ScorerInputError) as error:
        call(fake, scenes[0])
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_model_that_is_neither_a_folder_nor_a_server(tmp_path):
    with pytest.raises(ScorerInputError, match="no such export folder .* nor a HOST:PORT"):
        captioning.Scorer(str(tmp_path / "missing"))


def test_embeddings_without_the_head_say_which_signature_is_missing(tmp_path, scenes):
    from tests.fake_model import export_fake_model

    export_fake_model(str(tmp_path), 1, contrastive=False)
    with pytest.raises(runners.MissingSignatureError, match="has no 'embed_image' signature"):
        captioning.Scorer(str(tmp_path)).embed_images(scenes)


def test_the_tiny_model_scores_captions_and_labels(tiny_export_dir, sample_images):
    paths, _ = sample_images  # PNG, JPEG and BMP files
    scorer = captioning.Scorer(tiny_export_dir)
    scores = scorer(images=paths, texts=TEXTS)
    assert scores.shape == (3, 3) and np.all(np.isfinite(scores)) and np.all(scores < 0)
    # The same numbers as the pairs signature the command line uses (serving_default), pair by pair.
    with open(paths[2], "rb") as file:
        pairs = scorer.model.run("serving_default", {"image_bytes": [file.read()] * 3, "text": TEXTS})
    np.testing.assert_allclose(scores[2], pairs["log_likelihood"], rtol=1e-4)
    captions = scorer.caption(paths, beam_size=2)
    assert len(captions) == 3 and all(isinstance(caption, str) and caption for caption in captions)
    ranked = scorer.labels(paths[0], ["red square", "blue circle", "green star"])
    assert [row["score"] for row in ranked] == sorted((row["score"] for row in ranked), reverse=True)
    assert {row["label"] for row in ranked} == {"red square", "blue circle", "green star"}
    assert ranked[0]["prompt"] == DEFAULT_TEMPLATE.format(ranked[0]["label"])


def test_a_served_model_gives_the_local_numbers(fake_dir, fake, scenes):
    from tests.serving.conftest import running_server

    with running_server(fake_dir) as server:
        remote = captioning.Scorer(f"127.0.0.1:{server.grpc_port}")
        np.testing.assert_allclose(remote(scenes, TEXTS), fake(scenes, TEXTS), rtol=1e-6)
        assert remote.caption(scenes[:1]) == fake.caption(scenes[:1])


def test_a_pil_image_in_another_mode_is_converted(fake, scenes):
    with Image.open(scenes[0]) as opened:
        rgb, cmyk = opened.convert("RGB"), opened.convert("CMYK")
    np.testing.assert_allclose(fake(images=[cmyk], texts=TEXTS), fake(images=[rgb], texts=TEXTS), atol=0.05)
