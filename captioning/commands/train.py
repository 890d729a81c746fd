"""Train the captioning model, then export a versioned SavedModel for scoring and TF Serving.

    python train.py                      # built-in synthetic scenes, default small model, CPU or all GPUs
    python train.py --dataset coco --annotations annotations/captions_train2014.json --image_dir train2014 \
        --backbone EfficientNetB0 --backbone_weights imagenet

Running the same command again after an interruption (even kill -9) resumes from the last checkpoint. With
TF_CONFIG naming several workers, run the same command on each: they train as one job (MultiWorkerMirroredStrategy).
"""

import os

from absl import flags, logging

from captioning.data.dataset_flags import dataset_source
from captioning.model.config import ModelConfig
from captioning.training.config import TrainingConfig
from captioning.util import cli
from captioning.util.errors import tf_error_line

FLAGS = flags.FLAGS
_MODEL, _TRAIN = ModelConfig(), TrainingConfig()

flags.DEFINE_string("tfrecords", None, "Train on this TFRecords directory (scripts/make_tfrecords.py) instead of "
                                       "reading the dataset's image files.")
flags.DEFINE_string("output_dir", "checkpoints", "Checkpoints, logs, the trained model and export/<version>/.")

flags.DEFINE_string("backbone", _MODEL.backbone, "small_cnn or a keras.applications name (e.g. EfficientNetB0).")
flags.DEFINE_string("backbone_weights", _MODEL.backbone_weights, "imagenet (downloads), none, or a .weights.h5 path.")
flags.DEFINE_bool("train_backbone", _MODEL.train_backbone, "Fine-tune a keras.applications backbone.")
flags.DEFINE_integer("image_size", None, "Input image side (default: 64 for small_cnn, 224 otherwise).")
flags.DEFINE_integer("embed_dim", _MODEL.embed_dim, "Model width.")
flags.DEFINE_integer("num_layers", _MODEL.num_layers, "Decoder layers.")
flags.DEFINE_integer("num_heads", _MODEL.num_heads, "Attention heads.")
flags.DEFINE_integer("context_heads", _MODEL.context_heads, "Heads of the encoder's cell context, which lets each "
                     "cell read how much of its kind the image holds (what counting needs); 0: none.")
flags.DEFINE_integer("ff_dim", _MODEL.ff_dim, "Decoder feed-forward width.")
flags.DEFINE_float("dropout", _MODEL.dropout, "Decoder dropout.")
flags.DEFINE_float("image_dropout", _MODEL.image_dropout, "Share of examples trained with the null image.")
flags.DEFINE_integer("contrastive_dim", _MODEL.contrastive_dim, "Width of the contrastive head's image and text "
                     "embeddings (CoCa-style).")
flags.DEFINE_float("contrastive_weight", _TRAIN.contrastive_weight, "Weight of the contrastive loss beside the "
                                                                    "caption loss; 0 trains no contrastive head.")
flags.DEFINE_float("count_loss_weight", _TRAIN.count_loss_weight, "Weight of the counting loss, which trains the "
                   "cell context to name how many of each kind a scene holds; only where the data has scenes "
                   "(the synthetic data does) and the model a context. 0: none.")
flags.DEFINE_integer("max_length", _MODEL.max_length, "Decoder positions ([start] + words); longer texts truncate.")
flags.DEFINE_integer("max_vocab_size", 10000, "Vocabulary size cap, special tokens included.")
flags.DEFINE_integer("min_word_count", 1, "Words rarer than this in training captions map to [unk].")

flags.DEFINE_integer("batch_size", _TRAIN.global_batch_size, "Global batch size, split across replicas.")
flags.DEFINE_integer("epochs", _TRAIN.epochs, "Epochs.")
flags.DEFINE_integer("steps_per_epoch", _TRAIN.steps_per_epoch, "Steps per epoch.")
flags.DEFINE_float("learning_rate", _TRAIN.learning_rate, "Peak learning rate (warm-up, then cosine decay).")
flags.DEFINE_integer("warmup_steps", _TRAIN.warmup_steps, "Warm-up steps.")
flags.DEFINE_integer("checkpoint_every", _TRAIN.checkpoint_every_steps, "Checkpoint every N steps.")
flags.DEFINE_integer("steps_per_loop", _TRAIN.steps_per_loop, "Optimizer steps per tf.function call (as Keras' "
                     "steps_per_execution): fewer host round trips; metrics are read once per call.")
flags.DEFINE_integer("log_every", _TRAIN.log_every_steps, "Progress line every N steps when the output is not a "
                     "terminal (a terminal gets a live bar).")
flags.DEFINE_bool("mixed_precision", _TRAIN.mixed_precision, "Reduced precision where the hardware has it: "
                  "mixed_float16 on GPUs, mixed_bfloat16 on CPUs with bf16 units, float32 otherwise.")
flags.DEFINE_integer("seed", _TRAIN.seed, "Data order and image-dropout seed.")
flags.DEFINE_integer("max_steps", None, "Stop after this many steps in this run (training resumes next run).")
flags.DEFINE_bool("export", True, "Export a SavedModel when training is complete.")

_AT_LEAST_ONE = ("embed_dim", "num_layers", "num_heads", "ff_dim", "max_vocab_size", "min_word_count", "batch_size",
                 "steps_per_epoch", "checkpoint_every", "steps_per_loop", "log_every", "image_size", "max_steps")
cli.define_flag_validators(
    *((name, lambda value: value >= 1, "must be at least 1") for name in _AT_LEAST_ONE),
    ("epochs", lambda value: value >= 1, "must be at least 1: with 0 there is nothing to train"),
    ("max_length", lambda value: value >= 2, "must be at least 2 ([start] and one word)"),
    ("contrastive_dim", lambda value: value >= 1, "must be at least 1 (--contrastive_weight 0 "
                                                  "trains no contrastive head)"),
    ("contrastive_weight", lambda value: value >= 0, "must be 0 (no head) or more"),
    ("context_heads", lambda value: value >= 0, "must be 0 (no cell context) or more"),
    ("count_loss_weight", lambda value: value >= 0, "must be 0 (no counting loss) or more"),
    ("learning_rate", lambda value: value > 0, "must be more than 0"),
    ("warmup_steps", lambda value: value >= 0, "must be 0 or more"),
    ("dropout", lambda value: 0 <= value < 1, "must be in [0, 1)"),
    ("image_dropout", lambda value: 0 <= value <= 1, "must be in [0, 1]"),
    ("output_dir", lambda path: not os.path.isfile(path), "is a file: give a folder (created if missing)"),
    ("tfrecords", os.path.isdir, "must name a folder written by scripts/make_tfrecords.py"),
)


def model_config_from_flags() -> ModelConfig:
    image_size = FLAGS.image_size or (64 if FLAGS.backbone == "small_cnn" else 224)
    return ModelConfig(max_length=FLAGS.max_length, image_size=image_size, backbone=FLAGS.backbone,
                       backbone_weights=FLAGS.backbone_weights, train_backbone=FLAGS.train_backbone,
                       embed_dim=FLAGS.embed_dim, num_heads=FLAGS.num_heads, num_layers=FLAGS.num_layers,
                       ff_dim=FLAGS.ff_dim, dropout=FLAGS.dropout, image_dropout=FLAGS.image_dropout,
                       context_heads=FLAGS.context_heads,
                       contrastive_dim=FLAGS.contrastive_dim if FLAGS.contrastive_weight else 0)


def training_config_from_flags() -> TrainingConfig:
    return TrainingConfig(global_batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
                          steps_per_epoch=FLAGS.steps_per_epoch, learning_rate=FLAGS.learning_rate,
                          warmup_steps=FLAGS.warmup_steps, checkpoint_every_steps=FLAGS.checkpoint_every,
                          steps_per_loop=FLAGS.steps_per_loop, log_every_steps=FLAGS.log_every,
                          mixed_precision=FLAGS.mixed_precision, contrastive_weight=FLAGS.contrastive_weight,
                          count_loss_weight=FLAGS.count_loss_weight,
                          seed=FLAGS.seed)


def main(argv):
    del argv
    import tensorflow as tf

    from captioning.training.run import run_training

    model_config = model_config_from_flags()
    try:
        format, annotations, image_dir, kwargs = (None, None, None, {}) if FLAGS.tfrecords else \
            dataset_source(model_config.image_size, os.path.join(FLAGS.output_dir, "synthetic_data"))
        export_path = run_training(model_config, training_config_from_flags(), format, annotations, image_dir,
                                   FLAGS.output_dir, val_fraction=FLAGS.val_fraction, max_steps=FLAGS.max_steps,
                                   export=FLAGS.export, max_vocab_size=FLAGS.max_vocab_size,
                                   min_word_count=FLAGS.min_word_count, reader_kwargs=kwargs,
                                   tfrecord_dir=FLAGS.tfrecords)
    except (ValueError, RuntimeError, OSError) as error:
        logging.debug("training failed", exc_info=True)
        return cli.fail(error)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError, tf.errors.InternalError) as error:  # a peer of a multi-worker job died
        logging.debug("training failed", exc_info=True)
        return cli.fail(f"the job lost a worker ({type(error).__name__}: {tf_error_line(error.message)}); run the same "
                        "command on every worker to resume from the last checkpoint", exit_code=1)
    if export_path:
        print(f"exported SavedModel: {export_path}")
    return 0


def run() -> None:
    """The `captioning-train` command (also `python train.py`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
