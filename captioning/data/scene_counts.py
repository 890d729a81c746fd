"""What each image's scene holds, in the rows the counting loss reads (captioning.training.counting): per object
its centre and how many of the scene's objects share its shape, and its shape and colour. Both training inputs
carry them: a list of examples as an array beside it, TFRecords inside each image's record."""

import numpy as np

ROW_WIDTH = 4  # x, y, objects of its shape, objects of its shape and colour


def object_counts(objects) -> list:
    """A scene's objects, each (shape, colour, x, y) -> per object [x, y, objects of its shape, objects of its shape
    and colour]."""
    return [
        [x, y, sum(s == shape for s, _, _, _ in objects), sum(s == shape and c == colour for s, c, _, _ in objects)]
        for shape, colour, x, y in objects
    ]


def counts_array(examples):
    """-> float32 [examples, most objects, 4] (rows of object_counts, zero-padded: a zero count is no object), or
    None when no example carries its scene's objects."""
    width = max((len(e.objects) for e in examples), default=0)
    if not width:
        return None
    array = np.zeros((len(examples), width, ROW_WIDTH), np.float32)
    for row, example in enumerate(examples):
        if example.objects:
            array[row, : len(example.objects)] = object_counts(example.objects)
    return array
