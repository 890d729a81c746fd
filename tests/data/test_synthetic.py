import json
import os
import subprocess
import sys

import numpy as np
import pytest

from captioning.data import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_scenes_and_images_are_deterministic_from_the_seed():
    first, again, other = (synthetic.generate_scenes(20, seed) for seed in (3, 3, 4))
    assert first == again and first != other
    np.testing.assert_array_equal(np.asarray(synthetic.render_scene(first[0])),
                                  np.asarray(synthetic.render_scene(again[0])))


def test_scenes_cover_the_vocabulary_of_attributes():
    scenes = synthetic.generate_scenes(400, seed=1)
    objects = [o for s in scenes for o in s.objects]
    assert {o.color for o in objects} == set(synthetic.COLORS)
    assert {o.shape for o in objects} == set(synthetic.SHAPES)
    assert {len(s.objects) for s in scenes} == {1, 2, 3}
    assert {s.relation for s in scenes if len(s.objects) == 2} == set(synthetic.RELATIONS)
    assert {s.background for s in scenes} == {"noise", "gradient", "gradient_noise"}


def test_relations_match_object_positions():
    for scene in synthetic.generate_scenes(200, seed=2):
        if scene.relation:
            a, b = scene.objects
            expected = {"left of": a.x < b.x, "right of": a.x > b.x, "above": a.y < b.y, "below": a.y > b.y}
            assert expected[scene.relation]


def test_held_out_combinations_are_excluded_or_required():
    held_out = [("red", "star"), ("blue", "circle")]
    kept_out = [(o.color, o.shape) for s in synthetic.generate_scenes(300, 0, held_out) for o in s.objects]
    assert not set(kept_out) & set(held_out)
    only = [(o.color, o.shape) for s in synthetic.generate_scenes(50, 0, held_out, True) for o in s.objects]
    assert set(only) <= set(held_out)


def test_captions_vary_and_hard_negatives_change_one_attribute():
    rng = np.random.default_rng(0)
    scene = synthetic.Scene((synthetic.SceneObject("orange", "star", "small", 0.2, 0.5),
                             synthetic.SceneObject("blue", "square", "large", 0.8, 0.5)), relation="left of")
    assert synthetic.full_caption(scene) == "a small orange star left of a large blue square"
    captions = synthetic.describe_scene(scene, rng, 5)
    assert len(set(captions)) == 5 and len({len(c.split()) for c in captions}) > 1
    negatives = synthetic.hard_negatives(scene, rng)
    assert negatives["relation"] == (synthetic.full_caption(scene), "a large blue square left of a small orange star")
    for kind in ("color", "shape", "size"):
        true, false = negatives[kind]
        assert true != false and len(set(true.split()) ^ set(false.split())) <= 4  # one attribute (and article)
    # Binding exchanges the colours or the sizes of the two objects, articles following the new first word.
    assert negatives["binding"][1] in ("a small blue star left of a large orange square",
                                       "a large orange star left of a small blue square")


def test_binding_needs_an_attribute_that_differs():
    same_colour_and_size = synthetic.Scene((synthetic.SceneObject("green", "star", "small", 0.2, 0.5),
                                            synthetic.SceneObject("green", "cross", "small", 0.8, 0.5)),
                                           relation="left of")
    assert "binding" not in synthetic.hard_negatives(same_colour_and_size, np.random.default_rng(0))
    colours_only = synthetic.Scene((synthetic.SceneObject("green", "star", "small", 0.2, 0.5),
                                    synthetic.SceneObject("orange", "cross", "small", 0.8, 0.5)), relation="above")
    true, false = synthetic.hard_negatives(colours_only, np.random.default_rng(0))["binding"]
    assert (true, false) == ("a small green star above a small orange cross",
                             "a small orange star above a small green cross")


def test_make_synthetic_dataset_script_writes_coco_captions(tmp_path):
    out = tmp_path / "scenes"
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_synthetic_dataset.py"),
                    "--output_dir", str(out), "--num_images", "6", "--seed", "5"], check=True, capture_output=True)
    data = json.loads((out / "annotations" / "captions.json").read_text())
    assert len(data["images"]) == 6 and len(data["annotations"]) >= 6 * 4
    assert all((out / "images" / image["file_name"]).exists() for image in data["images"])
    from captioning.data.readers import read_coco
    examples = read_coco(str(out / "annotations" / "captions.json"), str(out / "images"))
    assert len(examples) == len(data["annotations"])


def test_unknown_held_out_colour_is_rejected():
    with pytest.raises(ValueError, match="unknown colour"):
        synthetic.generate_scenes(1, 0, [("mauve", "star")])


def test_held_out_combinations_parse_from_flags_and_a_malformed_one_is_named():
    assert synthetic.parse_combinations(["red:star", " blue:cross "]) == [("red", "star"), ("blue", "cross")]
    for malformed in ("red-star", "red:", ":star", "red:star:big"):
        with pytest.raises(ValueError, match=f"{malformed!r} is not colour:shape"):
            synthetic.parse_combinations([malformed])
