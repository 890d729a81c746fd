"""Which relation does the model prefer between the two objects of a scene? Prints, for two-object scenes, the
log-likelihood of "A <relation> B" for all four relations, to see whether a model reads the axis and direction.

    python scripts/probe_relations.py --model_dir checkpoints/export --num_scenes 12
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captioning.data import synthetic  # noqa: E402
from captioning.saved_model_scorer import SavedModelScorer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "checkpoints/export", "Export base directory or one version directory.")
flags.DEFINE_integer("num_scenes", 12, "Two-object scenes to probe.")
flags.DEFINE_integer("seed", 777, "Scene seed (training uses 0 by default).")
flags.DEFINE_integer("image_size", 64, "Image side in pixels (the model's).")


def main(argv):
    del argv
    scorer = SavedModelScorer(FLAGS.model_dir)
    scenes = [s for s in synthetic.generate_scenes(20 * FLAGS.num_scenes, FLAGS.seed) if s.relation]
    print(f"{'true relation':>14}  " + "  ".join(f"{r:>9}" for r in synthetic.RELATIONS) + "  first object")
    for scene in scenes[:FLAGS.num_scenes]:
        first, second = scene.objects
        image = synthetic.render_scene_png(scene, FLAGS.image_size)
        texts = [f"{first.phrase()} {relation} {second.phrase()}" for relation in synthetic.RELATIONS]
        scores = scorer.score([image] * len(texts), texts)["log_likelihood"]
        print(f"{scene.relation:>14}  " + "  ".join(f"{s:9.2f}" for s in scores) + f"  {first.phrase()}")


if __name__ == "__main__":
    app.run(main)
