"""The caption grammar of the synthetic world (docs/architecture.md, "The synthetic world and its grammar"): true
captions of a scene in several phrasings, its most specific caption, and hard negatives (a true caption against the
same caption with one thing changed) for evaluation.

The grammar is a contract; evaluation and other tools compose captions in it:
- an object: `a|an [small|large] COLOUR SHAPE`;
- a relation: `OBJECT left of|right of|above|below OBJECT` (synthetic.relation_holds);
- between: `OBJECT between OBJECT and OBJECT` (synthetic.between_holds);
- a count: `two|three [COLOUR] SHAPEs`, exactly that many objects of that shape (and colour) (synthetic.count_of);
- a list of every object: `OBJECT, OBJECT and OBJECT`.
A relation or "between" names each object by a phrase that no other object of the scene shares.
"""

import dataclasses

import numpy as np

from captioning.data import synthetic
from captioning.data.synthetic import COLORS, INVERSE_RELATION, RELATIONS, SHAPES, Scene, SceneObject

NUMBER_WORDS = {2: "two", 3: "three"}
PLURALS = {shape: shape + ("es" if shape.endswith("s") else "s") for shape in SHAPES}
# Crowded scenes state relations only between objects in one row or column, never near the rule's edge.
CLEAR_ACROSS = 0.1


def phrase(obj: SceneObject, with_size: bool = True) -> str:
    """The object as a noun phrase with its article: 'a small red circle', 'an orange star'."""
    words = f"{obj.size} {obj.color} {obj.shape}" if with_size else f"{obj.color} {obj.shape}"
    return ("an " if words[0] in "aeiou" else "a ") + words


def list_caption(objects, with_size: bool = True) -> str:
    phrases = [phrase(o, with_size) for o in objects]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def count_caption(count: int, shape: str, color: str = None) -> str:
    return " ".join(filter(None, (NUMBER_WORDS[count], color, PLURALS[shape])))


def full_caption(scene: Scene) -> str:
    """The most specific caption: every attribute of every object (the base for the old hard negatives)."""
    objects = scene.objects
    if len(objects) == 1:
        return f"{phrase(objects[0])} {scene.place}"
    if len(objects) == 2:
        return f"{phrase(objects[0])} {scene.relation} {phrase(objects[1])}"
    return list_caption(objects)


def _unique(scene: Scene, obj: SceneObject, with_size: bool) -> bool:
    return sum(phrase(o, with_size) == phrase(obj, with_size) for o in scene.objects) == 1


def true_relations(scene: Scene) -> list:
    """(first, relation, second) for every relation that holds between two uniquely named objects; in scenes of
    three or four, only between objects that share a row or a column."""
    named = [o for o in scene.objects if _unique(scene, o, with_size=True)]
    found = []
    for first in named:
        for second in named:
            for relation in RELATIONS if first is not second else ():
                across = abs(first.y - second.y) if relation in ("left of", "right of") else abs(first.x - second.x)
                if synthetic.relation_holds(first, second, relation) and (
                    len(scene.objects) == 2 or across <= CLEAR_ACROSS
                ):
                    found.append((first, relation, second))
    return found


def true_betweens(scene: Scene) -> list:
    """(middle, end, other_end) for every uniquely named object between two others (each end pair once)."""
    named = [o for o in scene.objects if _unique(scene, o, with_size=True)]
    return [
        (middle, end, other)
        for middle in named
        for i, end in enumerate(named)
        for other in named[i + 1 :]
        if middle is not end and middle is not other and synthetic.between_holds(middle, end, other)
    ]


def true_counts(scene: Scene) -> list:
    """(count, shape, colour or None) for every count of two or three objects of one shape, or shape and colour."""
    found = []
    for shape in SHAPES:
        for color in (None, *COLORS):
            count = synthetic.count_of(scene, shape, color)
            if count in NUMBER_WORDS:
                found.append((count, shape, color))
    return found


def _relation_phrasings(scene: Scene, first, relation, second) -> list:
    forms = [(first, relation, second), (second, INVERSE_RELATION[relation], first)]
    sizes = [True] + ([False] if _unique(scene, first, False) and _unique(scene, second, False) else [])
    return [f"{phrase(a, s)} {r} {phrase(b, s)}" for a, r, b in forms for s in sizes]


def _between_phrasings(scene: Scene, middle, end, other) -> list:
    sizeless = all(_unique(scene, o, False) for o in (middle, end, other))
    forms = [(True, True)] + ([(False, False), (True, False)] if sizeless else [])  # (middle's size, the ends')
    return [f"{phrase(middle, m)} between {phrase(end, e)} and {phrase(other, e)}" for m, e in forms]


def _one_object_options(scene: Scene) -> list:
    o, place = scene.objects[0], scene.place
    return [
        phrase(o, False),
        phrase(o),
        f"{phrase(o, False)} {place}",
        f"{phrase(o)} {place}",
        f"there is {phrase(o)} {place}",
        f"a picture of {phrase(o, False)} {place}",
        f"the image shows {phrase(o)}",
    ]


def _two_object_options(scene: Scene) -> list:
    a, b = scene.objects
    rel, inverse = scene.relation, INVERSE_RELATION[scene.relation]
    sizeless = (
        [f"{phrase(a, False)} {rel} {phrase(b, False)}", f"{phrase(b, False)} {inverse} {phrase(a, False)}"]
        if _unique(scene, a, False)
        else []
    )  # two objects told apart by their sizes alone need them
    return (
        sizeless
        + [
            f"{phrase(a)} {rel} {phrase(b)}",
            f"{phrase(b)} {inverse} {phrase(a)}",
            f"there is {phrase(a)} {rel} {phrase(b)}",
            f"{phrase(a, False)} and {phrase(b, False)}",
            f"{phrase(a)} and {phrase(b)}",
        ]
        + [count_caption(*count) for count in true_counts(scene)]
    )


def _crowded_options(scene: Scene, rng) -> dict:
    """Category -> phrasings; describe_scene takes one of each category before filling up from all of them."""
    shuffled = [scene.objects[i] for i in rng.permutation(len(scene.objects))]
    relations = true_relations(scene)
    chosen = [relations[i] for i in rng.permutation(len(relations))[:3]]
    return {
        "list": [list_caption(shuffled, False), list_caption(shuffled), full_caption(scene)],
        "relation": [text for relation in chosen for text in _relation_phrasings(scene, *relation)],
        "between": [text for line in true_betweens(scene) for text in _between_phrasings(scene, *line)],
        "count": [count_caption(*count) for count in true_counts(scene)],
    }


def describe_scene(scene: Scene, rng: np.random.Generator, num_captions: int = 5) -> list[str]:
    """Several distinct true captions of varying length and phrasing. Crowded scenes get one of each kind that
    applies (a list, a relation, "between", a count) before the rest are drawn from all."""
    if len(scene.objects) == 1:
        categories = {"all": _one_object_options(scene)}
    elif len(scene.objects) == 2:
        categories = {"all": _two_object_options(scene)}
    else:
        categories = _crowded_options(scene, rng)
    chosen = []
    for name in rng.permutation(sorted(categories)):
        options = [text for text in categories[name] if text not in chosen]
        if options and len(chosen) < num_captions:
            chosen.append(options[int(rng.integers(len(options)))])
    rest = [text for text in dict.fromkeys(t for options in categories.values() for t in options) if text not in chosen]
    extra = rng.choice(len(rest), size=min(num_captions - len(chosen), len(rest)), replace=False) if rest else []
    return chosen + [rest[i] for i in sorted(extra)]


def _with_objects(scene: Scene, objects) -> Scene:
    return dataclasses.replace(scene, objects=tuple(objects))


def _crowded_negatives(scene: Scene, rng) -> dict:
    """relation3, between and binding3 where the scene has them (count is shared with two-object scenes)."""
    pairs = {}
    relations = true_relations(scene)
    if relations:
        first, relation, second = relations[int(rng.integers(len(relations)))]
        pairs["relation3"] = (
            f"{phrase(first)} {relation} {phrase(second)}",
            f"{phrase(second)} {relation} {phrase(first)}",
        )
    betweens = true_betweens(scene)
    if betweens:
        middle, end, other = betweens[int(rng.integers(len(betweens)))]
        if rng.random() < 0.5:
            end, other = other, end
        pairs["between"] = (
            f"{phrase(middle)} between {phrase(end)} and {phrase(other)}",
            f"{phrase(end)} between {phrase(middle)} and {phrase(other)}",
        )
    # Two objects whose colours differ and which differ otherwise too, so the exchange changes the scene described.
    candidates = [
        (i, j)
        for i, a in enumerate(scene.objects)
        for j, b in enumerate(scene.objects)
        if i < j and a.color != b.color and (a.shape, a.size) != (b.shape, b.size)
    ]
    if candidates:
        i, j = candidates[int(rng.integers(len(candidates)))]
        objects = list(scene.objects)
        objects[i] = dataclasses.replace(scene.objects[i], color=scene.objects[j].color)
        objects[j] = dataclasses.replace(scene.objects[j], color=scene.objects[i].color)
        pairs["binding3"] = (full_caption(scene), full_caption(_with_objects(scene, objects)))
    return pairs


def _count_negative(scene: Scene, rng) -> dict:
    counts = true_counts(scene)
    if not counts:
        return {}
    count, shape, color = counts[int(rng.integers(len(counts)))]
    return {"count": (count_caption(count, shape, color), count_caption(5 - count, shape, color))}  # 2 <-> 3


def _two_object_negatives(scene: Scene, rng) -> dict:
    """relation (the two objects exchanged) and binding (their colours, or sizes, exchanged where they differ)."""
    pairs = {"relation": (full_caption(scene), full_caption(_with_objects(scene, scene.objects[::-1])))}
    first, second = scene.objects
    differing = [name for name in ("color", "size") if getattr(first, name) != getattr(second, name)]
    if differing:
        name = str(rng.choice(differing))
        exchanged = (
            dataclasses.replace(first, **{name: getattr(second, name)}),
            dataclasses.replace(second, **{name: getattr(first, name)}),
        )
        pairs["binding"] = (full_caption(scene), full_caption(_with_objects(scene, exchanged)))
    return pairs


def hard_negatives(scene: Scene, rng: np.random.Generator) -> dict:
    """kind -> (true caption, a false caption that differs in one thing):
    - every scene: `color`, `shape`, `size` (one object's attribute changed in the full caption);
    - two objects: `relation` (the two exchanged) and `binding` (their colours or sizes exchanged, where they
      differ: the same words in another order, so only reading which attribute belongs to which object tells
      them apart);
    - three or four objects: `relation3` (a relation between two of them, the two exchanged), `between` (the
      middle object exchanged with one end), `binding3` (two objects' colours exchanged in the full list);
    - two to four objects: `count` (two and three exchanged)."""
    true = full_caption(scene)
    index = int(rng.integers(len(scene.objects)))
    target = scene.objects[index]

    def changed(**change):
        objects = list(scene.objects)
        objects[index] = dataclasses.replace(target, **change)
        return full_caption(_with_objects(scene, objects))

    pairs = {
        "color": (true, changed(color=str(rng.choice([c for c in COLORS if c != target.color])))),
        "shape": (true, changed(shape=str(rng.choice([s for s in SHAPES if s != target.shape])))),
        "size": (true, changed(size="large" if target.size == "small" else "small")),
    }
    if len(scene.objects) == 2:
        pairs.update(_two_object_negatives(scene, rng))
    elif len(scene.objects) > 2:
        pairs.update(_crowded_negatives(scene, rng))
    if len(scene.objects) > 1:
        pairs.update(_count_negative(scene, rng))
    return pairs
