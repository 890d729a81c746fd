"""Built-in synthetic dataset: procedurally drawn scenes with compositional captions.

Scenes hold one to three objects, each with a colour, a shape, a size and a place; two-object scenes carry a
relation. Everything is deterministic from a seed. Colour-shape combinations can be held out of training to test
generalisation to unseen combinations, and `hard_negatives` makes the one-attribute-swapped captions used to
measure whether the model really reads colour, shape, size and relations.
"""

import csv
import dataclasses
import io
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw

from captioning.util import atomic

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 70, 230),
    "yellow": (245, 225, 30),
    "purple": (140, 40, 190),
    "orange": (250, 140, 20),
    "white": (250, 250, 250),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below")
INVERSE_RELATION = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
PLACES = {  # phrase -> centre as a fraction of the image side
    "on the left": (0.25, 0.5),
    "on the right": (0.75, 0.5),
    "at the top": (0.5, 0.25),
    "at the bottom": (0.5, 0.75),
    "in the center": (0.5, 0.5),
}
RADIUS = {"small": 0.11, "large": 0.2}  # fraction of the image side
SUPERSAMPLE = 4  # draw large, then downsample, for clean anti-aliased edges


@dataclasses.dataclass(frozen=True)
class SceneObject:
    color: str
    shape: str
    size: str
    x: float  # centre, as a fraction of the image side
    y: float

    def phrase(self, with_size: bool = True) -> str:
        """The object as a noun phrase with its article: 'a small red circle', 'an orange star'."""
        words = f"{self.size} {self.color} {self.shape}" if with_size else f"{self.color} {self.shape}"
        return ("an " if words[0] in "aeiou" else "a ") + words


@dataclasses.dataclass(frozen=True)
class Scene:
    objects: tuple
    place: str = ""  # one-object scenes: a key of PLACES
    relation: str = ""  # two-object scenes: objects[0] <relation> objects[1]
    background: str = "noise"  # "noise", "gradient" or "gradient_noise"
    seed: int = 0  # seeds the background pixels and colour jitter


def _random_object(rng, held_out, require_held_out, x=0.5, y=0.5, size=None):
    while True:
        color, shape = str(rng.choice(list(COLORS))), str(rng.choice(SHAPES))
        if ((color, shape) in held_out) == require_held_out:
            return SceneObject(color, shape, size or str(rng.choice(SIZES)), x, y)


def parse_combinations(items) -> list:
    """Colour-shape combinations written as flags take them, ["red:star", ...] -> [("red", "star"), ...]."""
    combinations = []
    for item in items:
        color, _, shape = item.strip().partition(":")
        if not color or not shape or ":" in shape:
            raise ValueError(f"held-out combination {item!r} is not colour:shape, e.g. red:star")
        combinations.append((color, shape))
    return combinations


def generate_scene(rng: np.random.Generator, held_out=(), require_held_out: bool = False) -> Scene:
    """A random scene. With `require_held_out`, every object uses a held-out colour-shape combination,
    otherwise none does."""
    held_out = {tuple(c) for c in held_out}
    for color, shape in held_out:
        if color not in COLORS or shape not in SHAPES:
            raise ValueError(f"unknown colour or shape in held-out combination {color}:{shape}; colours: "
                             f"{', '.join(COLORS)}; shapes: {', '.join(SHAPES)}")
    if require_held_out and not held_out:
        raise ValueError("require_held_out needs a non-empty held_out list")
    new = lambda **kw: _random_object(rng, held_out, require_held_out, **kw)  # noqa: E731
    background = str(rng.choice(["noise", "gradient", "gradient_noise"]))
    seed = int(rng.integers(2**31))
    num_objects = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    if num_objects == 1:
        place = str(rng.choice(list(PLACES)))
        px, py = PLACES[place]
        jitter = rng.uniform(-0.06, 0.06, size=2)
        return Scene((new(x=px + jitter[0], y=py + jitter[1]),), place=place, background=background, seed=seed)
    if num_objects == 2:
        first, second = new(), new()
        while first.phrase() == second.phrase():  # the relation must say which object is which
            second = new()
        relation = str(rng.choice(RELATIONS))
        along = rng.uniform(0.22, 0.3)  # each object's distance from the centre along the relation's axis
        across = rng.uniform(-0.08, 0.08, size=2)
        sign = -1 if relation in ("left of", "above") else 1
        if relation in ("left of", "right of"):
            centres = [(0.5 + sign * along, 0.5 + across[0]), (0.5 - sign * along, 0.5 + across[1])]
        else:
            centres = [(0.5 + across[0], 0.5 + sign * along), (0.5 + across[1], 0.5 - sign * along)]
        objects = tuple(dataclasses.replace(o, x=c[0], y=c[1]) for o, c in zip((first, second), centres))
        return Scene(objects, relation=relation, background=background, seed=seed)
    corners = rng.permutation([(0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73)])[:3]
    objects = tuple(new(x=cx + rng.uniform(-0.04, 0.04), y=cy + rng.uniform(-0.04, 0.04)) for cx, cy in corners)
    return Scene(objects, background=background, seed=seed)


def _shape_polygon(shape, cx, cy, r):
    if shape == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.radians([-90, 30, 150])]
    if shape == "star":
        radii = [r if i % 2 == 0 else r * 0.45 for i in range(10)]
        return [(cx + q * math.cos(a), cy + q * math.sin(a)) for q, a in zip(radii, np.radians(np.arange(-90, 270, 36)))]
    if shape == "cross":
        a, b = r, r * 0.35
        return [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b),
                (cx + b, cy + b), (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b),
                (cx - a, cy - b), (cx - b, cy - b)]
    raise ValueError(f"unknown shape {shape!r}")


def _background(scene: Scene, size: int, rng) -> np.ndarray:
    # Desaturated, mid-brightness colours, so no object colour can be read off the background.
    def muted_color():
        return 0.45 * rng.uniform(40, 215, size=3) + 0.55 * rng.uniform(70, 170)

    if scene.background == "noise":
        image = np.broadcast_to(muted_color(), (size, size, 3)).copy()
    else:
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        image = (1 - t)[..., None] * muted_color() + t[..., None] * muted_color()
    if scene.background != "gradient":
        image += rng.normal(0, 18, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_scene(scene: Scene, image_size: int = 64) -> Image.Image:
    rng = np.random.default_rng(scene.seed)
    big = image_size * SUPERSAMPLE
    canvas = Image.fromarray(_background(scene, big // SUPERSAMPLE, rng)).resize((big, big), Image.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        color = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in COLORS[obj.color])
        cx, cy, r = obj.x * big, obj.y * big, RADIUS[obj.size] * big
        outline = dict(outline=(0, 0, 0), width=max(1, SUPERSAMPLE * image_size // 48))
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color, **outline)
        else:
            draw.polygon(_shape_polygon(obj.shape, cx, cy, r), fill=color, **outline)
    return canvas.resize((image_size, image_size), Image.LANCZOS)


def render_scene_png(scene: Scene, image_size: int = 64) -> bytes:
    """The scene as PNG file bytes, as the exported model and the training data read it."""
    buffer = io.BytesIO()
    render_scene(scene, image_size).save(buffer, format="PNG")
    return buffer.getvalue()


def _list_phrase(phrases):
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def full_caption(scene: Scene) -> str:
    """The most specific caption: every attribute of every object (the base for hard negatives)."""
    objects = scene.objects
    if len(objects) == 1:
        return f"{objects[0].phrase()} {scene.place}"
    if len(objects) == 2:
        return f"{objects[0].phrase()} {scene.relation} {objects[1].phrase()}"
    return _list_phrase([o.phrase() for o in objects])


def describe_scene(scene: Scene, rng: np.random.Generator, num_captions: int = 5) -> list[str]:
    """Several distinct true captions of varying length and phrasing."""
    objects = scene.objects
    if len(objects) == 1:
        o, place = objects[0], scene.place
        options = [o.phrase(False), o.phrase(), f"{o.phrase(False)} {place}",
                   f"{o.phrase()} {place}", f"there is {o.phrase()} {place}",
                   f"a picture of {o.phrase(False)} {place}", f"the image shows {o.phrase()}"]
    elif len(objects) == 2:
        a, b = objects
        rel, inverse = scene.relation, INVERSE_RELATION[scene.relation]
        options = [f"{a.phrase(False)} {rel} {b.phrase(False)}", f"{a.phrase()} {rel} {b.phrase()}",
                   f"{b.phrase(False)} {inverse} {a.phrase(False)}", f"{b.phrase()} {inverse} {a.phrase()}",
                   f"there is {a.phrase()} {rel} {b.phrase()}", f"{a.phrase(False)} and {b.phrase(False)}",
                   f"two objects: {a.phrase()} and {b.phrase()}"]
    else:
        order = list(rng.permutation(len(objects)))
        shuffled = [objects[i] for i in order]
        options = [_list_phrase([o.phrase(False) for o in shuffled]),
                   _list_phrase([o.phrase() for o in shuffled]),
                   "three objects: " + _list_phrase([o.phrase() for o in shuffled]),
                   "there are three objects: " + _list_phrase([o.phrase(False) for o in objects])]
    options = list(dict.fromkeys(options + [full_caption(scene)]))
    chosen = rng.choice(len(options), size=min(num_captions, len(options)), replace=False)
    return [options[i] for i in sorted(chosen)]


def hard_negatives(scene: Scene, rng: np.random.Generator) -> dict:
    """kind -> (true caption, the same caption with one attribute changed) for colour, shape, size and, in
    two-object scenes, relation (the two objects exchanged) and binding (the two objects' colours, or sizes,
    exchanged, where they differ: the same words in another order, so only reading which attribute belongs to
    which object tells them apart)."""
    true = full_caption(scene)
    index = int(rng.integers(len(scene.objects)))
    target = scene.objects[index]

    def swapped(**change):
        objects = list(scene.objects)
        objects[index] = dataclasses.replace(target, **change)
        return full_caption(dataclasses.replace(scene, objects=tuple(objects)))

    pairs = {
        "color": swapped(color=str(rng.choice([c for c in COLORS if c != target.color]))),
        "shape": swapped(shape=str(rng.choice([s for s in SHAPES if s != target.shape]))),
        "size": swapped(size="large" if target.size == "small" else "small"),
    }
    if scene.relation:
        pairs["relation"] = full_caption(dataclasses.replace(scene, objects=scene.objects[::-1]))
        first, second = scene.objects
        differing = [name for name in ("color", "size") if getattr(first, name) != getattr(second, name)]
        if differing:
            name = str(rng.choice(differing))
            exchanged = (dataclasses.replace(first, **{name: getattr(second, name)}),
                         dataclasses.replace(second, **{name: getattr(first, name)}))
            pairs["binding"] = full_caption(dataclasses.replace(scene, objects=exchanged))
    return {kind: (true, false) for kind, false in pairs.items()}


def generate_scenes(num_images: int, seed: int, held_out=(), require_held_out: bool = False) -> list:
    rng = np.random.default_rng(seed)
    return [generate_scene(rng, held_out, require_held_out) for _ in range(num_images)]


def write_coco_dataset(output_dir: str, num_images: int, seed: int, image_size: int = 64, held_out=(),
                       captions_per_image: int = 5) -> str:
    """Writes `output_dir/images/*.png` and `output_dir/annotations/captions.json` (COCO captions format,
    with each image's scene kept under a `scene` key for evaluation); returns the annotations path."""
    os.makedirs(os.path.join(output_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(output_dir, "annotations"), exist_ok=True)
    caption_rng = np.random.default_rng([seed, 1])
    images, annotations = [], []
    for image_id, scene in enumerate(generate_scenes(num_images, seed, held_out)):
        file_name = f"{image_id:06d}.png"
        render_scene(scene, image_size).save(os.path.join(output_dir, "images", file_name))
        images.append({"id": image_id, "file_name": file_name, "width": image_size, "height": image_size,
                       "scene": dataclasses.asdict(scene)})
        for caption in describe_scene(scene, caption_rng, captions_per_image):
            annotations.append({"id": len(annotations), "image_id": image_id, "caption": caption})
    info = {"description": "synthetic scenes", "seed": seed, "num_images": num_images, "image_size": image_size,
            "held_out": [list(c) for c in held_out]}
    path = os.path.join(output_dir, "annotations", "captions.json")
    # The annotations file appears only once every image is written.
    atomic.write_text(path, json.dumps({"info": info, "images": images, "annotations": annotations}))
    return path


def write_pairs_csv(directory: str, rows: int, images: int, pixels: int, seed: int = 2024) -> str:
    """A pairs CSV for the batch-scoring benchmarks: `images` synthetic scenes as JPEG files (images/NNNN.jpg)
    and `rows` rows cycling through them, each with a different phrasing of its scene; image paths are
    relative to the CSV. Returns the CSV's path."""
    os.makedirs(os.path.join(directory, "images"), exist_ok=True)
    scenes = generate_scenes(images, seed)
    rng = np.random.default_rng(seed)
    captions = [describe_scene(scene, rng, 8) for scene in scenes]
    for i, scene in enumerate(scenes):
        render_scene(scene, pixels).save(os.path.join(directory, "images", f"{i:04d}.jpg"), quality=90)
    path = os.path.join(directory, "pairs.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image_path", "caption"])
        for row in range(rows):
            image = row % images
            writer.writerow([f"images/{image:04d}.jpg", captions[image][(row // images) % len(captions[image])]])
    return path


def scene_from_dict(values: dict) -> Scene:
    return Scene(**{**values, "objects": tuple(SceneObject(**o) for o in values["objects"])})
