"""The figures people look at: a title never covers what is under it."""

import numpy as np
import pytest
from PIL import Image

from captioning.util import figures


@pytest.fixture
def thumbnail(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(path)
    return str(path)


def boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_the_image_captions_title_clears_its_first_row(thumbnail):
    rows = 10  # more than max_pairs: the figure gets its "first 8 of 10 rows" title
    figure = figures.image_captions_figure(
        [thumbnail] * rows,
        ["a small orange square left of a large blue circle"] * rows,
        [-3.2] * rows,
        [None] * rows,
        "log_likelihood",
        max_pairs=8,
        columns=4,
    )
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)  # the layout is settled when the figure is drawn
    title = figure._suptitle
    assert title.get_text() == "first 8 of 10 rows"
    title_box = title.get_window_extent(renderer)
    for axis in figure.axes:
        assert not boxes_overlap(title_box, axis.title.get_window_extent(renderer)), axis.title.get_text()
        assert not boxes_overlap(title_box, axis.get_window_extent(renderer))


def test_image_captions_are_written_as_a_jpeg(thumbnail, tmp_path):
    path = tmp_path / "captions.jpg"
    figures.draw_image_captions(
        str(path),
        [thumbnail, "missing.png"],
        ["a red star", "a blue cross"],
        [-2.0, 0.0],
        [None, "missing image"],
        "log_likelihood",
    )
    with Image.open(path) as drawn:
        assert drawn.format == "JPEG"
