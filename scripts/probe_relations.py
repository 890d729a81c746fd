"""Does a model read where each object is? For two-object scenes it prints the log-likelihood of
"A <relation> B" for all four relations, then a summary over every probed scene:

- axis: the best relation on the true axis (left/right or above/below) beats the best on the other axis;
- direction: the true relation beats its inverse with the objects in the same order ("A left of B" vs
  "A right of B"): a model that knows the layout but not which object is where gets 0.5;
- binding: the true caption beats the one with the two objects' colours or sizes exchanged.

    python scripts/probe_relations.py --model_dir checkpoints/export --num_scenes 200 --show 12
"""

import numpy as np
from absl import flags

from captioning.util import cli

cli.quiet_start()  # before the imports below load TensorFlow

from captioning.data import scene_captions, synthetic  # noqa: E402
from captioning.data.scene_captions import phrase  # noqa: E402
from captioning.inference.local import SavedModelScorer  # noqa: E402

FLAGS = flags.FLAGS
cli.define_model_dir_flag()
cli.define_scene_flags(seed=777)
flags.DEFINE_integer("num_scenes", 200, "Two-object scenes to probe.")
flags.DEFINE_integer("show", 12, "Scenes whose four relation scores are printed.")
cli.define_flag_validators(
    ("num_scenes", lambda value: value >= 1, "must be at least 1"),
    ("show", lambda value: value >= 0, "must be 0 or more"),
)

HORIZONTAL = ("left of", "right of")


def main(argv):
    del argv
    scorer = SavedModelScorer(FLAGS.model_dir)
    rng = np.random.default_rng(FLAGS.seed)
    scenes = [s for s in synthetic.generate_scenes(4 * FLAGS.num_scenes, FLAGS.seed) if s.relation]
    scenes = scenes[: FLAGS.num_scenes]
    print(f"{'true relation':>14}  " + "  ".join(f"{r:>9}" for r in synthetic.RELATIONS) + "  first object")
    axis, direction, binding = [], [], []
    for number, scene in enumerate(scenes):
        first, second = scene.objects
        image = synthetic.render_scene_png(scene, FLAGS.image_size)
        texts = [f"{phrase(first)} {relation} {phrase(second)}" for relation in synthetic.RELATIONS]
        negatives = scene_captions.hard_negatives(scene, rng)
        if "binding" in negatives:
            texts += list(negatives["binding"])
        scores = dict(zip(texts, scorer.score([image] * len(texts), texts)["log_likelihood"]))
        by_relation = dict(zip(synthetic.RELATIONS, scores.values()))
        true_axis = HORIZONTAL if scene.relation in HORIZONTAL else tuple(set(synthetic.RELATIONS) - set(HORIZONTAL))
        other_axis = [score for relation, score in by_relation.items() if relation not in true_axis]
        axis.append(max(by_relation[r] for r in true_axis) > max(other_axis))
        direction.append(by_relation[scene.relation] > by_relation[synthetic.INVERSE_RELATION[scene.relation]])
        if "binding" in negatives:
            true, exchanged = negatives["binding"]
            binding.append(scores[true] > scores[exchanged])
        if number < FLAGS.show:
            print(
                f"{scene.relation:>14}  "
                + "  ".join(f"{by_relation[r]:9.2f}" for r in synthetic.RELATIONS)
                + f"  {phrase(first)}"
            )
    print(
        f"\nover {len(scenes)} two-object scenes (seed {FLAGS.seed}): axis {np.mean(axis):.3f}, "
        f"direction {np.mean(direction):.3f}, binding {np.mean(binding):.3f} ({len(binding)} scenes whose objects "
        "differ in colour or size)"
    )


if __name__ == "__main__":
    cli.run(main)
