"""FLOPs of one training example, counted by TensorFlow's profiler on the model's graphs, and the time per epoch
they imply on N accelerators at an assumed sustained rate: an estimate, not a measurement.

    python scripts/estimate_training_flops.py --backbone EfficientNetB0 --image_size 224 \
        --captions_per_epoch 566747 --devices 8 --sustained_tflops 100

Training costs about 3x the forward pass (forward, then gradients for activations and weights) for the parts
that train; a frozen backbone (the default) runs forward only.
"""

from absl import flags

from captioning.util import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("backbone", "EfficientNetB0", "Backbone, as train.py's --backbone.")
flags.DEFINE_integer("image_size", 224, "Input side in pixels.")
flags.DEFINE_bool("train_backbone", False, "Count the backbone's backward pass too.")
flags.DEFINE_integer("captions_per_epoch", 566747, "Training captions (COCO Karpathy train + restval: 566,747).")
flags.DEFINE_integer("devices", 8, "Accelerators.")
flags.DEFINE_float(
    "sustained_tflops",
    30.0,
    "Assumed sustained TFLOP/s per device: about 10% of an A100's 312 bf16 "
    "peak, as EfficientNet's depthwise convolutions are memory-bound.",
)
flags.DEFINE_float("measured_examples_per_second", None, "Examples/s measured here, to report the FLOP/s reached.")
cli.define_flag_validators(
    *(
        (name, lambda value: value >= 1, "must be at least 1")
        for name in ("image_size", "captions_per_epoch", "devices")
    ),
    *(
        (name, lambda value: value > 0, "must be more than 0")
        for name in ("sustained_tflops", "measured_examples_per_second")
    ),
)


def graph_flops(function, *specs) -> int:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(tf.function(function).get_concrete_function(*specs))
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    return tf.compat.v1.profiler.profile(graph=frozen.graph, options=options).total_float_ops


def main(argv):
    del argv
    import tensorflow as tf

    from captioning.model.captioner import Captioner
    from captioning.model.config import ModelConfig

    config = ModelConfig(vocab_size=10000, image_size=FLAGS.image_size, backbone=FLAGS.backbone)
    model = Captioner(config)
    size, length = config.image_size, config.max_length
    encoder = graph_flops(lambda x: model.encode_images(x), tf.TensorSpec([1, size, size, 3], tf.float32))
    features = model.encode_images(tf.zeros([1, size, size, 3]))
    decoder = graph_flops(
        lambda f, ids: model.decode(f, ids),
        tf.TensorSpec(features.shape, features.dtype),
        tf.TensorSpec([1, length], tf.int32),
    )
    per_example = encoder * (3 if FLAGS.train_backbone else 1) + 3 * decoder
    epoch = per_example * FLAGS.captions_per_epoch
    seconds = epoch / (FLAGS.devices * FLAGS.sustained_tflops * 1e12)
    print(
        f"forward FLOPs per example: encoder {encoder / 1e9:.2f} G, decoder {decoder / 1e9:.3f} G "
        f"({FLAGS.backbone} {size}px, vocabulary 10,000, {length} positions)"
    )
    print(
        f"training FLOPs per example: {per_example / 1e9:.2f} G "
        f"({'trained' if FLAGS.train_backbone else 'frozen'} backbone); per epoch of "
        f"{FLAGS.captions_per_epoch:,} captions: {epoch / 1e15:.1f} PFLOP"
    )
    print(
        f"estimate: {seconds:.0f} s of compute per epoch on {FLAGS.devices} devices at "
        f"{FLAGS.sustained_tflops:g} sustained TFLOP/s each, i.e. {FLAGS.captions_per_epoch / seconds:,.0f} "
        "examples/s the input pipeline must deliver to keep up"
    )
    if FLAGS.measured_examples_per_second:
        reached = per_example * FLAGS.measured_examples_per_second / 1e9
        print(f"measured here: {FLAGS.measured_examples_per_second:g} examples/s = {reached:.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    cli.run(main)
