"""Evaluate an exported model and print a Markdown report (what is measured: captioning.evaluate.evaluation).

    python -m captioning.evaluate --model_dir checkpoints/export --seed 12345 --num_images 500      # synthetic
    python -m captioning.evaluate --model_dir M --dataset karpathy --annotations dataset_coco.json \
        --image_dir coco/ --split test --output_json report.json
"""

import json

from absl import flags

from captioning.data import synthetic
from captioning.data.dataset_flags import define_held_out_flag, define_source_flags
from captioning.evaluate.evaluation import evaluate_dataset, evaluate_synthetic, held_out_of_training, markdown_report
from captioning.export import layout
from captioning.inference import ranking
from captioning.inference.runners import LocalModel
from captioning.model.config import ModelConfig
from captioning.util import cli

FLAGS = flags.FLAGS
cli.define_model_dir_flag()
define_source_flags()
define_held_out_flag()
flags.DEFINE_string("split", "test", "Split to evaluate; alpha is chosen on the val split.")
flags.DEFINE_integer("seed", 12345, "Scene seed; use one never used in training.")
flags.DEFINE_integer("val_seed", None, "Scene seed of the synthetic validation scenes (default: seed + 1).")
flags.DEFINE_integer("num_images", 500, "Scenes for hard-negative accuracy.")
flags.DEFINE_integer("retrieval_images", 100, "Images for recall@k, alpha and caption metrics.")
flags.DEFINE_integer("beam_size", 3, "Beam width of the generated captions; 0 skips caption metrics.")
flags.DEFINE_bool("store_alpha", True, "Write the chosen alpha to the model's assets.extra/ranking.json.")
flags.DEFINE_string("output_json", None, "Also write the report here.")
flags.DEFINE_string("output_markdown", None, "Also write the Markdown table here.")
cli.define_flag_validators(
    ("num_images", lambda value: value >= 1, "must be at least 1"),
    ("retrieval_images", lambda value: value >= 2, "must be at least 2 (recall ranks images against each other)"),
    ("beam_size", lambda value: value >= 0, "must be 0 (no caption metrics) or more"),
    # Checked before the evaluation runs, not after it.
    ("output_json", cli.can_write_file, "cannot be written: give a file in a writable, existing folder"),
    ("output_markdown", cli.can_write_file, "cannot be written: give a file in a writable, existing folder"),
)


def evaluate_model(model) -> dict:
    if FLAGS.dataset != "synthetic":
        return evaluate_dataset(
            model,
            FLAGS.dataset,
            FLAGS.annotations,
            FLAGS.image_dir,
            FLAGS.split,
            FLAGS.retrieval_images,
            FLAGS.beam_size,
        )
    held_out = (
        held_out_of_training(model)
        if FLAGS.held_out_combinations is None
        else synthetic.parse_combinations(FLAGS.held_out_combinations)
    )
    image_size = ModelConfig.load(model.extra_file(layout.CONFIG_FILE)).image_size
    return evaluate_synthetic(
        model,
        image_size,
        FLAGS.seed,
        FLAGS.num_images,
        FLAGS.retrieval_images,
        FLAGS.val_seed,
        held_out,
        FLAGS.beam_size,
    )


def main(argv):
    del argv
    try:
        model = LocalModel(FLAGS.model_dir)
        report = {"model": model.path, **evaluate_model(model)}
    except OSError as error:  # a file that cannot be read (an error of the tree is told by cli.run)
        return cli.fail(error)
    table = markdown_report(report)
    print(table)
    if FLAGS.store_alpha and "val_images" in report.get("alpha", {}):
        path = model.extra_file(layout.RANKING_FILE)
        choice = report["alpha"]
        chosen_on = {key: report[key] for key in ("dataset", "annotations", "val_seed") if key in report}
        evidence = {key: value for key, value in choice.items() if key not in ("alpha", "helps")}
        ranking.write_ranking(path, choice["alpha"], choice["helps"], {"chosen_on": chosen_on, **evidence})
        print(f"\nstored alpha {report['alpha']['alpha']:g} in {path}")
    for path, text in ((FLAGS.output_json, json.dumps(report, indent=2)), (FLAGS.output_markdown, table + "\n")):
        if path:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return 0


def run() -> None:
    """The `captioning-evaluate` command (also `python -m captioning.evaluate`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
