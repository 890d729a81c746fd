"""generate_caption refuses a beam or a length past its limits inside the SavedModel, so stock TF Serving answers
INVALID_ARGUMENT too, and does so before it allocates the beam; the image signatures refuse an image past the
pixel limit, measured as the decoder measures it."""

import io
import os

import pytest
import tensorflow as tf
from PIL import Image

from captioning.data import synthetic
from captioning.data.images import MAX_IMAGE_PIXELS
from captioning.export.saved_model import MAX_BEAM_SIZE
from tests.helpers import TINY_MODEL


def peak_growth_mb(call) -> float:
    """How far this process's resident memory rose above its level before `call()`, at its peak: the kernel's
    high-water mark (VmHWM), reset to the current level first, so memory taken and given back still counts."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_mb("VmRSS")
    call()
    return _status_mb("VmHWM") - before


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(f"{field}:")) / 1024


@pytest.fixture(scope="module")
def generate(tiny_export_dir):
    signature = tf.saved_model.load(os.path.join(tiny_export_dir, "1")).signatures["generate_caption"]
    image = synthetic.render_scene_png(synthetic.generate_scenes(1, seed=3)[0], TINY_MODEL.image_size)

    def call(beam_size, max_length=0):
        return signature(
            image_bytes=tf.constant([image]),
            beam_size=tf.constant(beam_size, tf.int32),
            max_length=tf.constant(max_length, tf.int32),
            length_penalty=tf.constant(0.0),
        )

    call(2)  # warm up
    return call


def test_the_widest_beam_allowed_runs(generate):
    assert generate(MAX_BEAM_SIZE)["caption"].shape == (1, MAX_BEAM_SIZE)


def test_a_beam_past_the_limit_is_refused_before_it_is_allocated(generate):
    # Without the check, beam 20000 takes hundreds of MB on the tiny model (100000: 22 GB): a refusal that came
    # after the beam was built would show in the peak, even once the memory is given back.
    def refused(beam_size):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"beam_size must be at most {MAX_BEAM_SIZE}"):
            generate(beam_size)

    for beam_size in (MAX_BEAM_SIZE + 1, 20000):
        assert peak_growth_mb(lambda beam_size=beam_size: refused(beam_size)) < 30


def test_max_length_past_the_model_is_refused(generate):
    words = TINY_MODEL.max_length - 1
    assert generate(1, max_length=words)["tokens"].shape[-1] <= words + 1
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"max_length must be at most {words}"):
        generate(1, max_length=words + 1)


def test_a_gif_frame_past_the_pixel_limit_behind_a_1x1_screen_is_refused(tiny_export_dir):
    # Stock TF Serving runs only the graph: its check must measure the frame as the decoder does (its own
    # descriptor's size, any GIF8 version), not the logical screen.
    side = int(MAX_IMAGE_PIXELS**0.5) + 1
    buffer = io.BytesIO()
    Image.new("P", (side, side), 1).save(buffer, "GIF")
    gif = bytearray(buffer.getvalue())
    gif[3:6], gif[6:10] = b"88a", b"\1\0\1\0"
    signature = tf.saved_model.load(os.path.join(tiny_export_dir, "1")).signatures["encode_image"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="MAX_IMAGE_PIXELS"):
        signature(image_bytes=tf.constant([bytes(gif)]))
