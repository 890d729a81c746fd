"""Draw a two-object scene the model has not seen, and its true caption beside the same caption with the relation
reversed and with one colour changed; with --model_dir, score the three and say what the scores read.

    python scripts/draw_example.py --output checkpoints/example.png
    -> checkpoints/example.png, then three lines: the true caption, the relation reversed, one colour changed
    python scripts/draw_example.py --output checkpoints/example.png --model_dir checkpoints/export
    -> the three captions with their log-likelihoods, what they read, and commands to try next
"""

import dataclasses
import os
import textwrap

import numpy as np
from absl import flags

from captioning.data import scene_captions, synthetic
from captioning.util import cli

FLAGS = flags.FLAGS
DEFAULT_MODEL_DIR = "checkpoints/export"
flags.DEFINE_string("output", "checkpoints/example.png", "Where to write the PNG.")
flags.DEFINE_integer(
    "seed", 2026, "Scenes are drawn from this seed on until one holds two objects (training uses seed 0 by default)."
)
flags.DEFINE_integer("image_size", 64, "Image side in pixels.")
flags.DEFINE_string("model_dir", None, "Score the captions with this export folder and explain the scores.")
cli.define_flag_validators(
    ("output", lambda path: not os.path.isdir(path), "is a folder: give a .png file name"),
    ("image_size", lambda value: value >= 8, "must be at least 8"),
    ("model_dir", os.path.isdir, "must name an export folder (python train.py writes checkpoints/export)"),
)


def two_object_scene(seed: int) -> synthetic.Scene:
    """The first scene from `seed` on with two objects: its caption states how they sit ("... left of ...")."""
    for offset in range(1000):
        scene = synthetic.generate_scenes(1, seed + offset)[0]
        if len(scene.objects) == 2:
            return scene
    raise ValueError(f"no two-object scene among seeds {seed} to {seed + 999}")


def example_captions(scene: synthetic.Scene, seed: int) -> dict:
    """{"true": the scene's caption, "relation reversed": ..., "colour changed": ...}, each in the model's words."""
    reversed_scene = dataclasses.replace(scene, relation=synthetic.INVERSE_RELATION[scene.relation])
    _, colour_changed = scene_captions.hard_negatives(scene, np.random.default_rng(seed))["color"]
    return {
        "true": scene_captions.full_caption(scene),
        "relation reversed": scene_captions.full_caption(reversed_scene),
        "colour changed": colour_changed,
    }


def reading(scores: dict) -> list:
    """What the log-likelihoods say, in sentences."""
    lines = [
        "log_likelihood is log P(text | image), summed over the words: the higher, the likelier the model finds "
        "the text as a caption of this image."
    ]
    for name in ("relation reversed", "colour changed"):
        gap, change = scores["true"] - scores[name], f"the {name}"
        if gap > 0.005:
            lines.append(
                f"The true caption beats the one with {change} by {gap:.2f}: the model finds it about "
                f"{np.exp(min(gap, 700)):,.0f} times likelier."
            )
        else:
            beside = f"{-gap:.2f} above" if gap < -0.005 else "the same as"
            lines.append(
                f"The caption with {change} scores {beside} the true one: this model cannot tell them "
                "apart yet (a longer training run, --epochs, teaches it)."
            )
    return [wrapped for line in lines for wrapped in textwrap.wrap(line, 110)]


def next_commands(image: str, model_dir: str, captions: dict) -> list:
    true, changed = captions["true"], captions["relation reversed"]
    score = (
        ".venv/bin/python get_similarity_score.py"
        + ("" if model_dir == DEFAULT_MODEL_DIR else f" --model_dir {model_dir}")
        + f" --image_path {image}"
    )
    return [
        f'{score} --text "{true}" --text "{changed}"    # every score of each text',
        f"{score} --generate    # the model's own captions",
        f'{score} --labels "red circle,blue square,green star"    # zero-shot labels',
        f'.venv/bin/python -c \'import captioning; print(captioning.Scorer("{model_dir}")(images=["{image}"], '
        f'texts=["{true}", "{changed}"]))\'    # the same from Python (docs/scoring.md)',
    ]


def main(argv):
    del argv
    scene = two_object_scene(FLAGS.seed)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    synthetic.render_scene(scene, FLAGS.image_size).save(FLAGS.output)
    captions = example_captions(scene, FLAGS.seed)
    if not FLAGS.model_dir:
        print("\n".join(captions.values()))
        return 0
    import captioning  # the Scorer loads TensorFlow: only when a model is asked for

    values = captioning.Scorer(FLAGS.model_dir)(images=[FLAGS.output], texts=list(captions.values()))[0]
    scores = dict(zip(captions, values.tolist()))
    print(f"{FLAGS.output}, a scene the model has not seen, scored against three captions:\n")
    print(f"  {'log_likelihood':>14}  text")
    for name, text in captions.items():
        print(f"  {scores[name]:14.2f}  {text}    ({name})")
    print("\n" + "\n".join(reading(scores)))
    commands = next_commands(FLAGS.output, os.path.normpath(FLAGS.model_dir), captions)
    print("\nNext, try:\n" + "\n".join(f"  {command}" for command in commands))
    return 0


if __name__ == "__main__":
    cli.run(main, expected=(OSError, ValueError))  # an --output that cannot be written, or not as an image
