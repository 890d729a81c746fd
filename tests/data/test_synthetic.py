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
    np.testing.assert_array_equal(
        np.asarray(synthetic.render_scene(first[0])), np.asarray(synthetic.render_scene(again[0]))
    )


def test_scenes_cover_the_vocabulary_of_attributes():
    scenes = synthetic.generate_scenes(400, seed=1)
    objects = [o for s in scenes for o in s.objects]
    assert {o.color for o in objects} == set(synthetic.COLORS)
    assert {o.shape for o in objects} == set(synthetic.SHAPES)
    assert {len(s.objects) for s in scenes} == {1, 2, 3, 4}
    assert {s.relation for s in scenes if len(s.objects) == 2} == set(synthetic.RELATIONS)
    assert {s.background for s in scenes} == {"noise", "gradient", "gradient_noise"}


def test_relations_match_object_positions():
    for scene in synthetic.generate_scenes(200, seed=2):
        if scene.relation:
            a, b = scene.objects
            expected = {"left of": a.x < b.x, "right of": a.x > b.x, "above": a.y < b.y, "below": a.y > b.y}
            assert expected[scene.relation]


def test_crowded_scenes_hold_lines_of_three_and_repeated_shapes_without_overlaps():
    crowded = [s for s in synthetic.generate_scenes(600, seed=5) if len(s.objects) >= 3]
    lines = [
        s
        for s in crowded
        if any(synthetic.between_holds(*(s.objects[i] for i in order)) for order in ((0, 1, 2), (1, 0, 2), (2, 0, 1)))
    ]
    assert 0.35 <= len(lines) / len(crowded) <= 0.65
    most_shared = [max(synthetic.count_of(s, shape) for shape in synthetic.SHAPES) for s in crowded]
    assert {most_shared.count(n) / len(crowded) > 0.15 for n in (1, 2, 3)} == {True}
    assert any(max(synthetic.count_of(s, o.shape, o.color) for o in s.objects) == 3 for s in crowded)
    assert {o.size for s in crowded for o in s.objects} == set(synthetic.SIZES)
    for scene in crowded:
        for i, a in enumerate(scene.objects):
            for b in scene.objects[i + 1 :]:
                gap = np.hypot(a.x - b.x, a.y - b.y) - synthetic.RADIUS[a.size] - synthetic.RADIUS[b.size]
                assert gap > 0, scene


def test_relation_and_between_rules_measure_centres_in_fractions_of_the_side():
    at = lambda x, y: synthetic.SceneObject("red", "star", "small", x, y)  # noqa: E731
    assert synthetic.relation_holds(at(0.2, 0.5), at(0.4, 0.5), "left of")
    assert not synthetic.relation_holds(at(0.2, 0.5), at(0.39, 0.5), "left of")  # less than 0.2 along
    assert not synthetic.relation_holds(at(0.2, 0.5), at(0.5, 0.65), "left of")  # half the distance across
    assert synthetic.relation_holds(at(0.2, 0.5), at(0.5, 0.64), "left of")
    assert synthetic.relation_holds(at(0.5, 0.2), at(0.5, 0.8), "above") and not synthetic.relation_holds(
        at(0.5, 0.2), at(0.5, 0.8), "below"
    )
    assert synthetic.between_holds(at(0.5, 0.5), at(0.2, 0.52), at(0.8, 0.45))
    assert synthetic.between_holds(at(0.5, 0.5), at(0.5, 0.2), at(0.5, 0.8))  # a column
    assert not synthetic.between_holds(at(0.5, 0.5), at(0.36, 0.5), at(0.8, 0.5))  # too close to one end
    assert not synthetic.between_holds(at(0.5, 0.5), at(0.2, 0.61), at(0.8, 0.5))  # too far across
    assert not synthetic.between_holds(at(0.2, 0.5), at(0.5, 0.5), at(0.8, 0.5))  # an end, not the middle


def test_held_out_combinations_are_excluded_or_required():
    held_out = [("red", "star"), ("blue", "circle")]
    kept_out = [(o.color, o.shape) for s in synthetic.generate_scenes(300, 0, held_out) for o in s.objects]
    assert not set(kept_out) & set(held_out)
    only = [(o.color, o.shape) for s in synthetic.generate_scenes(50, 0, held_out, True) for o in s.objects]
    assert set(only) <= set(held_out)


def test_make_synthetic_dataset_script_writes_coco_captions_and_each_scene(tmp_path):
    out = tmp_path / "scenes"
    subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "make_synthetic_dataset.py"),
            "--output_dir",
            str(out),
            "--num_images",
            "6",
            "--seed",
            "5",
        ],
        check=True,
        capture_output=True,
    )
    data = json.loads((out / "annotations" / "captions.json").read_text())
    assert len(data["images"]) == 6 and len(data["annotations"]) >= 6 * 4
    assert all((out / "images" / image["file_name"]).exists() for image in data["images"])
    for image in data["images"]:  # the scene's form is a contract: objects with colour, shape, size and centre
        assert all(set(o) == {"color", "shape", "size", "x", "y"} for o in image["scene"]["objects"])
        assert synthetic.scene_from_dict(image["scene"]) in synthetic.generate_scenes(6, seed=5)
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


def test_the_world_can_be_kept_to_fewer_objects_and_no_more_than_four():
    assert {len(s.objects) for s in synthetic.generate_scenes(200, seed=8, max_objects=2)} == {1, 2}
    for wrong in (0, synthetic.MAX_OBJECTS + 1):
        with pytest.raises(ValueError, match=f"not at most {wrong}"):
            synthetic.generate_scenes(1, 0, max_objects=wrong)
