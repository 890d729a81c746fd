"""The caption grammar, checked by an independent reading of it: a small parser that decides whether a caption
in the grammar is true of a scene, straight from the rules in docs/architecture.md."""

import re

import numpy as np
import pytest

from captioning.data import scene_captions, synthetic
from captioning.data.synthetic import Scene, SceneObject

COLOR = "|".join(synthetic.COLORS)
SHAPE = "|".join(synthetic.SHAPES)
OBJECT = rf"an? (?:(?P<{{0}}size>small|large) )?(?P<{{0}}color>{COLOR}) (?P<{{0}}shape>{SHAPE})"
PLURAL = {plural: shape for shape, plural in scene_captions.PLURALS.items()}
LEADS = ("there is ", "a picture of ", "the image shows ")  # the one- and two-object scenes' extra phrasings


def _object(name):
    return OBJECT.format(name)


def _matching(scene, match, name):
    """The scene's objects that the phrase captured under `name` describes."""
    size, color, shape = (match.group(name + key) for key in ("size", "color", "shape"))
    return [o for o in scene.objects if o.color == color and o.shape == shape and size in (None, o.size)]


def _the(scene, match, name):
    """The one object the phrase names, or None when it names none or several."""
    found = _matching(scene, match, name)
    return found[0] if len(found) == 1 else None


def is_true(scene: Scene, text: str) -> bool:
    """Whether `text`, read by the grammar, is true of `scene` (captions outside the grammar raise)."""
    for lead in LEADS:
        text = text.removeprefix(lead)
    for place in synthetic.PLACES:  # one-object scenes: an object and its place
        if text.endswith(" " + place):
            return scene.place == place and is_true(scene, text[: -len(place) - 1])
    if match := re.fullmatch(rf"(?P<n>two|three) (?:(?P<color>{COLOR}) )?(?P<plural>\w+)", text):
        count = {"two": 2, "three": 3}[match["n"]]
        return synthetic.count_of(scene, PLURAL[match["plural"]], match["color"]) == count
    relation = "|".join(synthetic.RELATIONS)
    if match := re.fullmatch(rf"{_object('a')} (?P<relation>{relation}) {_object('b')}", text):
        a, b = _the(scene, match, "a"), _the(scene, match, "b")
        return bool(a and b) and synthetic.relation_holds(a, b, match["relation"])
    if match := re.fullmatch(rf"{_object('m')} between {_object('e')} and {_object('f')}", text):
        m, e, f = (_the(scene, match, name) for name in "mef")
        return bool(m and e and f) and synthetic.between_holds(m, e, f)
    phrases = re.split(r", | and ", text)  # a list of every object, or a lone object
    matches = [re.fullmatch(_object(""), p) for p in phrases]
    if None in matches:
        raise ValueError(f"not in the grammar: {text!r}")
    left = list(scene.objects)
    for match in matches:
        found = [o for o in _matching(scene, match, "") if o in left]
        if not found:
            return False
        left.remove(found[0])
    return not left


def test_the_reading_itself_tells_true_from_false():
    scene = Scene(
        (
            SceneObject("red", "star", "small", 0.2, 0.5),
            SceneObject("red", "star", "large", 0.5, 0.5),
            SceneObject("blue", "cross", "small", 0.8, 0.5),
        )
    )
    assert is_true(scene, "two red stars") and is_true(scene, "two stars") and not is_true(scene, "three stars")
    assert is_true(scene, "a large red star between a small red star and a blue cross")
    assert not is_true(scene, "a red star between a small red star and a blue cross")  # "a red star" names two
    assert is_true(scene, "a small red star left of a blue cross") and not is_true(
        scene, "a blue cross left of a small red star"
    )
    assert is_true(scene, "a blue cross, a red star and a red star")
    assert not is_true(scene, "a blue cross, a red star and a blue star")
    assert not is_true(scene, "a blue cross and a red star")  # a list names every object
    with pytest.raises(ValueError, match="not in the grammar"):
        is_true(scene, "some red things")


@pytest.fixture(scope="module")
def scenes():
    return synthetic.generate_scenes(400, seed=7)


def test_every_training_caption_is_true_of_its_scene(scenes):
    rng = np.random.default_rng(0)
    for scene in scenes:
        for caption in scene_captions.describe_scene(scene, rng, 5):
            assert is_true(scene, caption), (caption, scene)


def test_crowded_scenes_are_described_by_each_kind_that_applies(scenes):
    rng = np.random.default_rng(1)
    for scene in (s for s in scenes if len(s.objects) >= 3):
        captions = scene_captions.describe_scene(scene, rng, 5)
        assert len(set(captions)) == len(captions) >= 3
        assert any("," in c for c in captions)  # the list of every object
        if scene_captions.true_betweens(scene):
            assert any(" between " in c for c in captions)
        if scene_captions.true_counts(scene):
            assert any(c.startswith(("two ", "three ")) for c in captions)
        if scene_captions.true_relations(scene):
            assert any(re.search(r" (left of|right of|above|below) ", c) for c in captions)


def test_every_hard_negative_is_false_and_its_caption_true(scenes):
    rng = np.random.default_rng(2)
    kinds = {}
    for scene in scenes:
        for kind, (true, false) in scene_captions.hard_negatives(scene, rng).items():
            assert is_true(scene, true) and not is_true(scene, false), (kind, true, false, scene)
            kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) == {"color", "shape", "size", "relation", "binding", "relation3", "between", "count", "binding3"}
    assert min(kinds.values()) >= 40, kinds


def test_new_negatives_change_only_what_their_kind_names():
    line = Scene(
        (
            SceneObject("red", "star", "small", 0.2, 0.5),
            SceneObject("green", "circle", "small", 0.5, 0.5),
            SceneObject("blue", "star", "small", 0.8, 0.5),
        )
    )
    negatives = scene_captions.hard_negatives(line, np.random.default_rng(0))
    true, false = negatives["between"]
    assert true.startswith("a small green circle between ") and not false.startswith("a small green circle")
    assert sorted(true.split()) == sorted(false.split())  # the same words: only the order says who is in the middle
    assert negatives["count"] in {("two stars", "three stars")}
    true, false = negatives["relation3"]
    assert sorted(true.split()) == sorted(false.split()) and true != false
    true, false = negatives["binding3"]
    assert true == "a small red star, a small green circle and a small blue star"
    assert sorted(true.split()) == sorted(false.split()) and true != false
    assert scene_captions.count_caption(3, "cross", "red") == "three red crosses"
