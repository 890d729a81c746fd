"""What one hostile input costs the exported graph, without and with its limits: a generate_caption beam far past
MAX_BEAM_SIZE, an animated GIF of many large frames, and images past MAX_IMAGE_PIXELS (a PNG, a GIF canvas).

    python scripts/benchmark_graph_limits.py --run_dir checkpoints

"before" runs what the graph ran without the limits (generation.generate on the encoded image; tf.io.decode_image
with expand_animations=False, which still reads every GIF frame); "after" runs the exported signature's code
(ScoringModule.generate_caption; captioning.data.images.decode_first_frame). Each case runs in a fresh process, so
the peak resident memory it adds is its own. Prints a Markdown table.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from captioning.util import cli

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "run_dir",
    "checkpoints",
    "A trained model's folder (config.json, vocabulary.txt, model.weights.h5), for the beam cases.",
)
flags.DEFINE_integer("beam_size", 10000, "The hostile beam width (100000 took 22.5 GB on the README's model).")
flags.DEFINE_integer("gif_frames", 200, "Frames of the animated GIF.")
flags.DEFINE_integer("gif_side", 2000, "Side of each GIF frame.")
flags.DEFINE_integer("png_side", 10000, "Side of the oversized PNG and GIF.")
flags.DEFINE_string("case", None, "Run one case in this process (used by the parent).")
flags.DEFINE_bool("limited", True, "With --case: run the code with the limits (after) or without (before).")
flags.DEFINE_string("image", None, "With --case: the image file to decode.")
flags.DEFINE_string("work_dir", None, "Where the images go (default: a temporary folder).")
cli.define_flag_validators(
    ("run_dir", os.path.isdir, "must name a trained model's folder (python train.py writes checkpoints/)"),
    *(
        (name, lambda value: value >= 1, "must be at least 1")
        for name in ("beam_size", "gif_frames", "gif_side", "png_side")
    ),
)


def write_images(work_dir: str) -> dict:
    from PIL import Image

    paths = {
        "animated_gif": os.path.join(work_dir, "animated.gif"),
        "huge_png": os.path.join(work_dir, "huge.png"),
        "huge_gif": os.path.join(work_dir, "huge.gif"),
    }
    frames = [Image.new("P", (FLAGS.gif_side,) * 2, i % 2) for i in range(FLAGS.gif_frames)]
    frames[0].save(paths["animated_gif"], save_all=True, append_images=frames[1:], palette=[0, 0, 0, 255, 255, 255])
    huge = Image.new("L", (FLAGS.png_side,) * 2, 0)
    huge.save(paths["huge_png"])
    huge.save(paths["huge_gif"])
    return paths


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent process)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def measure(case: str, limited: bool, image_path: str) -> dict:
    """Runs one case once after a warm-up call: {"status", "seconds", "added_mb"}."""
    import tensorflow as tf

    if case == "beam":
        from captioning.data import synthetic
        from captioning.export.saved_model import ScoringModule
        from captioning.model import generation
        from captioning.training.artifacts import load_trained_model

        model, vocabulary = load_trained_model(FLAGS.run_dir)
        module = ScoringModule(model, vocabulary)
        image = tf.constant(
            [synthetic.render_scene_png(synthetic.generate_scenes(1, seed=5)[0], model.config.image_size)]
        )
        unchecked = tf.function(lambda beam: generation.generate(model, module._encode(image), beam))
        call = (
            (lambda beam: module.generate_caption(image, tf.constant(beam), tf.constant(0), tf.constant(0.0)))
            if limited
            else (lambda beam: unchecked(tf.constant(beam)))
        )
        call(2)
        argument = FLAGS.beam_size
    else:
        from captioning.data.images import decode_first_frame

        decode = (
            decode_first_frame
            if limited
            else (lambda data: tf.io.decode_image(data, channels=3, expand_animations=False))
        )
        call = tf.function(decode, input_signature=[tf.TensorSpec([], tf.string)])
        call(tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)))
        with open(image_path, "rb") as f:
            argument = tf.constant(f.read())
    before, started = peak_rss_mb(), time.perf_counter()
    try:
        call(argument)
        status = "OK"
    except tf.errors.InvalidArgumentError:
        status = "INVALID_ARGUMENT"
    return {"status": status, "seconds": time.perf_counter() - started, "added_mb": peak_rss_mb() - before}


def run_case(case: str, limited: bool, image_path: str = "") -> dict:
    child = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            f"--case={case}",
            f"--run_dir={FLAGS.run_dir}",
            f"--beam_size={FLAGS.beam_size}",
            f"--image={image_path}",
            f"--{'' if limited else 'no'}limited",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if child.returncode:
        raise RuntimeError(f"{case} failed:\n{child.stderr[-2000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.case:
        print(json.dumps(measure(FLAGS.case, FLAGS.limited, FLAGS.image)))
        return 0
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="benchmark_graph_limits_")
    os.makedirs(work_dir, exist_ok=True)
    images = write_images(work_dir)
    cases = [
        ("beam", f"generate_caption beam_size {FLAGS.beam_size}", ""),
        (
            "animated_gif",
            f"GIF of {FLAGS.gif_frames} frames of {FLAGS.gif_side}x{FLAGS.gif_side} "
            f"({os.path.getsize(images['animated_gif']) // 1024} KB)",
            images["animated_gif"],
        ),
        *(
            (
                name,
                f"{name[5:].upper()} of {FLAGS.png_side}x{FLAGS.png_side} ({os.path.getsize(images[name]) // 1024} KB)",
                images[name],
            )
            for name in ("huge_png", "huge_gif")
        ),
    ]
    print("| input | before: status | s | +MB | after: status | s | +MB |")
    print("|---|---|---:|---:|---|---:|---:|")
    for case, description, path in cases:
        before, after = run_case(case, False, path), run_case(case, True, path)
        print(
            f"| {description} | {before['status']} | {before['seconds']:.2f} | {before['added_mb']:.0f} | "
            f"{after['status']} | {after['seconds']:.2f} | {after['added_mb']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    cli.run(main)
