"""Train the captioning model, then export a versioned SavedModel for scoring and TF Serving.

    python train.py                      # built-in synthetic scenes, default small model, CPU or all GPUs
    python train.py --dataset coco --annotations annotations/captions_train2014.json --image_dir train2014 \
        --backbone EfficientNetB0 --backbone_weights imagenet

Running the same command again after an interruption (even kill -9) resumes from the last checkpoint. With
TF_CONFIG naming several workers, run the same command on each: they train as one job (MultiWorkerMirroredStrategy).
"""

import os

from absl import flags, logging

from captioning.data.dataset_flags import dataset_source, define_dataset_flags
from captioning.model.config import ModelConfig
from captioning.training.config import TrainingConfig
from captioning.util import cli, config_fields
from captioning.util.errors import CaptioningError, outcome, tf_error_line

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The model's and the training's flags come from their configs' fields (defaults, help and checks); the rest
    are the run's own."""
    define_dataset_flags()
    config_fields.define_flags(ModelConfig, __name__)
    config_fields.define_flags(TrainingConfig, __name__)
    flags.DEFINE_string(
        "tfrecords",
        None,
        "Train on this TFRecords directory (scripts/make_tfrecords.py) instead of reading the dataset's image files.",
    )
    flags.DEFINE_string("output_dir", "checkpoints", "Checkpoints, logs, the trained model and export/<version>/.")
    flags.DEFINE_integer("max_vocab_size", 10000, "Vocabulary size cap, special tokens included.")
    flags.DEFINE_integer("min_word_count", 1, "Words rarer than this in training captions map to [unk].")
    flags.DEFINE_integer("max_steps", None, "Stop after this many steps in this run (training resumes next run).")
    flags.DEFINE_bool("export", True, "Export a SavedModel when training is complete.")
    flags.DEFINE_integer(
        "hard_negatives_every",
        500,
        "Synthetic data: every N steps (at the next checkpoint), hard-negative accuracy by kind on development "
        "scenes with the live weights, logged and kept in ckpt/hard_negatives.json (time-to-quality). 0: never.",
    )
    flags.DEFINE_integer("hard_negatives_scenes", 100, "Development scenes for --hard_negatives_every.")
    flags.DEFINE_integer("hard_negatives_seed", 2024, "Their seed: never an evaluation seed.")
    cli.define_flag_validators(
        *(
            (name, lambda value: value >= 1, "must be at least 1")
            for name in ("max_vocab_size", "min_word_count", "max_steps", "hard_negatives_scenes")
        ),
        ("hard_negatives_every", lambda value: value >= 0, "must be 0 (never) or more"),
        ("output_dir", lambda path: not os.path.isfile(path), "is a file: give a folder (created if missing)"),
        ("tfrecords", os.path.isdir, "must name a folder written by scripts/make_tfrecords.py"),
    )


def main(argv):
    del argv
    # Built before TensorFlow loads: a rule across fields (embed_dim and num_heads) fails in one line at once.
    model_config = ModelConfig(**config_fields.values_from_flags(ModelConfig))
    training_config = TrainingConfig(**config_fields.values_from_flags(TrainingConfig))
    import tensorflow as tf  # deferred: --help and bad flags answer without loading it

    from captioning.training import distribute
    from captioning.training.run import run_training

    try:
        format, annotations, image_dir, kwargs = (
            (None, None, None, {})
            if FLAGS.tfrecords
            else dataset_source(model_config.image_size, os.path.join(FLAGS.output_dir, "synthetic_data"))
        )
        export_path = run_training(
            model_config,
            training_config,
            format,
            annotations,
            image_dir,
            FLAGS.output_dir,
            val_fraction=FLAGS.val_fraction,
            max_steps=FLAGS.max_steps,
            export=FLAGS.export,
            max_vocab_size=FLAGS.max_vocab_size,
            min_word_count=FLAGS.min_word_count,
            reader_kwargs=kwargs,
            tfrecord_dir=FLAGS.tfrecords,
            after_checkpoint=_hard_negative_curve(),
        )
    except (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.CancelledError,
        tf.errors.AbortedError,
        tf.errors.InternalError,
    ) as error:  # a peer of a multi-worker job died
        logging.debug("training failed", exc_info=True)
        return cli.fail(
            f"the job lost a worker ({type(error).__name__}: {tf_error_line(error.message)}); run the same "
            "command on every worker to resume from the last checkpoint",
            exit_code=1,
        )
    except (CaptioningError, OSError, tf.errors.OpError) as error:  # a user's error (the tree), a file's, or TF's
        logging.debug("training failed", exc_info=True)
        in_tensorflow = isinstance(error, tf.errors.OpError)
        message = (
            f"training failed ({type(error).__name__}: {tf_error_line(error.message)})"
            if in_tensorflow
            else str(error).strip()
        )
        distribute.report_failure(message)  # the other workers stop now, not when the heartbeat times out
        code = 1 if in_tensorflow else outcome(error).exit_code if isinstance(error, CaptioningError) else 2
        return cli.fail(message, exit_code=code)
    if export_path:
        print(f"exported SavedModel: {export_path}")
    return 0


def _hard_negative_curve():
    """The time-to-quality curve, measured on synthetic scenes (their captions have hard negatives by kind)."""
    if not FLAGS.hard_negatives_every or FLAGS.dataset != "synthetic" or FLAGS.tfrecords:
        return None
    from captioning.evaluate.curves import HardNegativeCurve

    return HardNegativeCurve(
        os.path.join(FLAGS.output_dir, "ckpt"),
        FLAGS.hard_negatives_every,
        num_scenes=FLAGS.hard_negatives_scenes,
        seed=FLAGS.hard_negatives_seed,
    )


def run() -> None:
    """The `captioning-train` command (also `python train.py`)."""
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
