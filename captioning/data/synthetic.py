"""The built-in synthetic world: procedurally drawn scenes of one to four objects, and the rules that say what is
true of them.

Each object has a colour, a shape, a size and a centre. One-object scenes name a place, two-object scenes carry a
relation; scenes of three and four objects sit on a 3 x 3 grid of cells, half of them with three objects in one row
or column (one between two others), many with a shape repeated two or three times (in one colour or several), so
they can be described by relations among several objects, "between" and counts (captioning.data.scene_captions).
Everything is deterministic from a seed. Colour-shape combinations can be held out of training to test
generalisation to unseen combinations.
"""

import dataclasses
import io
import math

import numpy as np
from PIL import Image, ImageDraw

from captioning.util.errors import InvalidInput

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
OBJECT_COUNT_ODDS = {1: 0.15, 2: 0.35, 3: 0.3, 4: 0.2}
MAX_OBJECTS = max(OBJECT_COUNT_ODDS)
GRID = (0.2, 0.5, 0.8)  # crowded scenes: cell centres along each axis, as fractions of the side
GRID_JITTER = 0.03
SHARED_SHAPE_ODDS = {1: 0.2, 2: 0.25, 3: 0.55}  # crowded scenes: how many objects share the first one's shape
SAME_COLOR_ODDS = 0.75  # ... and how often each of them repeats its colour too
# The grammar's truth rules (docs/architecture.md, "The synthetic world and its grammar"), in fractions of the side.
RELATION_MIN_ALONG = 0.2
BETWEEN_MIN_ALONG = 0.15
BETWEEN_MAX_ACROSS = 0.1


@dataclasses.dataclass(frozen=True)
class SceneObject:
    color: str
    shape: str
    size: str
    x: float  # centre, as a fraction of the image side
    y: float


@dataclasses.dataclass(frozen=True)
class Scene:
    objects: tuple
    place: str = ""  # one-object scenes: a key of PLACES
    relation: str = ""  # two-object scenes: objects[0] <relation> objects[1]
    background: str = "noise"  # "noise", "gradient" or "gradient_noise"
    seed: int = 0  # seeds the background pixels and colour jitter


def relation_holds(first: SceneObject, second: SceneObject, relation: str) -> bool:
    """`first <relation> second`: the first centre at least RELATION_MIN_ALONG from the second's along the
    relation's axis, and less than half that distance from it across."""
    dx, dy = second.x - first.x, second.y - first.y  # image y grows downwards
    along, across = {"left of": (dx, dy), "right of": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[relation]
    return along >= RELATION_MIN_ALONG and abs(across) < along / 2


def between_holds(middle: SceneObject, end: SceneObject, other_end: SceneObject) -> bool:
    """`middle between end and other_end`: along one axis the middle centre lies between the ends' centres, at
    least BETWEEN_MIN_ALONG from each, and all three centres are within BETWEEN_MAX_ACROSS of each other across."""
    for along, across in (("x", "y"), ("y", "x")):
        low, high = sorted(getattr(o, along) for o in (end, other_end))
        spread = [getattr(o, across) for o in (middle, end, other_end)]
        if (
            low + BETWEEN_MIN_ALONG <= getattr(middle, along) <= high - BETWEEN_MIN_ALONG
            and max(spread) - min(spread) <= BETWEEN_MAX_ACROSS
        ):
            return True
    return False


def count_of(scene: Scene, shape: str, color: str = None) -> int:
    """How many objects of the scene have this shape (and colour, when given)."""
    return sum(o.shape == shape and color in (None, o.color) for o in scene.objects)


def parse_combinations(items) -> list:
    """Colour-shape combinations written as flags take them, ["red:star", ...] -> [("red", "star"), ...]."""
    combinations = []
    for item in items:
        color, _, shape = item.strip().partition(":")
        if not color or not shape or ":" in shape:
            raise InvalidInput(f"held-out combination {item!r} is not colour:shape, e.g. red:star")
        combinations.append((color, shape))
    return combinations


class _Identities:
    """Draws colour-shape combinations, all held out or none (as the scene requires)."""

    def __init__(self, rng, held_out, require_held_out):
        self.rng = rng
        self.allowed = [(c, s) for c in COLORS for s in SHAPES if ((c, s) in held_out) == require_held_out]

    def draw(self, shape=None, not_shapes=(), not_color=None) -> tuple:
        """A random allowed (colour, shape) meeting the constraints; None when none does."""
        choices = [(c, s) for c, s in self.allowed if shape in (None, s) and s not in not_shapes and c != not_color]
        return tuple(choices[int(self.rng.integers(len(choices)))]) if choices else None


def _validate_held_out(held_out, require_held_out):
    for color, shape in held_out:
        if color not in COLORS or shape not in SHAPES:
            raise InvalidInput(
                f"unknown colour or shape in held-out combination {color}:{shape}; colours: "
                f"{', '.join(COLORS)}; shapes: {', '.join(SHAPES)}"
            )
    if require_held_out and not held_out:
        raise ValueError("require_held_out needs a non-empty held_out list")


def generate_scene(
    rng: np.random.Generator, held_out=(), require_held_out: bool = False, max_objects: int = MAX_OBJECTS
) -> Scene:
    """A random scene of at most `max_objects` objects. With `require_held_out`, every object uses a held-out
    colour-shape combination, otherwise none does."""
    held_out = {tuple(c) for c in held_out}
    _validate_held_out(held_out, require_held_out)
    identities = _Identities(rng, held_out, require_held_out)
    background = str(rng.choice(["noise", "gradient", "gradient_noise"]))
    seed = int(rng.integers(2**31))
    if not 1 <= max_objects <= MAX_OBJECTS:
        raise InvalidInput(f"scenes hold 1 to {MAX_OBJECTS} objects, not at most {max_objects}")
    odds = np.array([odds for count, odds in OBJECT_COUNT_ODDS.items() if count <= max_objects])
    num_objects = int(rng.choice(len(odds), p=odds / odds.sum())) + 1
    if num_objects == 1:
        return _one_object_scene(rng, identities, background, seed)
    if num_objects == 2:
        return _two_object_scene(rng, identities, background, seed)
    return _crowded_scene(rng, identities, num_objects, background, seed)


def _random_size(rng) -> str:
    return str(rng.choice(SIZES))


def _one_object_scene(rng, identities, background, seed) -> Scene:
    place = str(rng.choice(list(PLACES)))
    (px, py), jitter = PLACES[place], rng.uniform(-0.06, 0.06, size=2)
    color, shape = identities.draw()
    return Scene(
        (SceneObject(color, shape, _random_size(rng), px + jitter[0], py + jitter[1]),),
        place=place,
        background=background,
        seed=seed,
    )


def _two_object_scene(rng, identities, background, seed) -> Scene:
    first = SceneObject(*identities.draw(), _random_size(rng), 0.5, 0.5)
    second = SceneObject(*identities.draw(), _random_size(rng), 0.5, 0.5)
    while (first.color, first.shape, first.size) == (second.color, second.shape, second.size):
        second = SceneObject(*identities.draw(), _random_size(rng), 0.5, 0.5)  # the relation must say which is which
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


def _crowded_places(rng, num_objects) -> list:
    """Grid cells for three or four objects; half the time the first three share a row or a column."""
    cells = [(x, y) for y in range(3) for x in range(3)]
    if rng.random() < 0.5:
        line, vertical = int(rng.integers(3)), bool(rng.random() < 0.5)
        in_line = [(line, k) if vertical else (k, line) for k in range(3)]
        rest = [cell for cell in cells if cell not in in_line]
        chosen = [in_line[i] for i in rng.permutation(3)] + [rest[i] for i in rng.permutation(len(rest))]
    else:
        chosen = [cells[i] for i in rng.permutation(len(cells))]
    jitter = rng.uniform(-GRID_JITTER, GRID_JITTER, size=(num_objects, 2))
    return [(GRID[x] + jx, GRID[y] + jy) for (x, y), (jx, jy) in zip(chosen[:num_objects], jitter)]


def _crowded_identities(rng, identities, num_objects) -> list:
    """(colour, shape) per object: the first one's shape shared by one, two or three objects (each of those in
    the first's colour or another), the others each of a shape of its own."""
    first = identities.draw()
    chosen = [first]
    for _ in range(int(rng.choice(list(SHARED_SHAPE_ODDS), p=list(SHARED_SHAPE_ODDS.values()))) - 1):
        other_color = identities.draw(shape=first[1], not_color=first[0])
        chosen.append(first if rng.random() < SAME_COLOR_ODDS or other_color is None else other_color)
    while len(chosen) < num_objects:  # each of another shape, so the first's is the only one repeated
        chosen.append(identities.draw(not_shapes={shape for _, shape in chosen}) or identities.draw())
    return [chosen[i] for i in rng.permutation(num_objects)]


def _crowded_sizes(rng, places) -> list:
    """Small, or large where a large object overlaps no other (each tried in random order)."""
    sizes = ["small"] * len(places)
    for i in rng.permutation(len(places)):
        if rng.random() < 0.5 and all(
            math.dist(places[i], places[j]) >= RADIUS["large"] + RADIUS[sizes[j]] + 0.01
            for j in range(len(places))
            if j != i
        ):
            sizes[i] = "large"
    return sizes


def _crowded_scene(rng, identities, num_objects, background, seed) -> Scene:
    places = _crowded_places(rng, num_objects)
    kinds = _crowded_identities(rng, identities, num_objects)
    sizes = _crowded_sizes(rng, places)
    objects = tuple(SceneObject(color, shape, size, x, y) for (color, shape), size, (x, y) in zip(kinds, sizes, places))
    return Scene(objects, background=background, seed=seed)


def _shape_polygon(shape, cx, cy, r):
    if shape == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.radians([-90, 30, 150])]
    if shape == "star":
        radii = [r if i % 2 == 0 else r * 0.45 for i in range(10)]
        angles = np.radians(np.arange(-90, 270, 36))
        return [(cx + q * math.cos(a), cy + q * math.sin(a)) for q, a in zip(radii, angles)]
    if shape == "cross":
        a, b = r, r * 0.35
        return [
            (cx - b, cy - a),
            (cx + b, cy - a),
            (cx + b, cy - b),
            (cx + a, cy - b),
            (cx + a, cy + b),
            (cx + b, cy + b),
            (cx + b, cy + a),
            (cx - b, cy + a),
            (cx - b, cy + b),
            (cx - a, cy + b),
            (cx - a, cy - b),
            (cx - b, cy - b),
        ]
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
        t = np.cos(angle) * xx + np.sin(angle) * yy
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


def generate_scenes(
    num_images: int, seed: int, held_out=(), require_held_out: bool = False, max_objects: int = MAX_OBJECTS
) -> list:
    rng = np.random.default_rng(seed)
    return [generate_scene(rng, held_out, require_held_out, max_objects) for _ in range(num_images)]


def scene_from_dict(values: dict) -> Scene:
    return Scene(**{**values, "objects": tuple(SceneObject(**o) for o in values["objects"])})
