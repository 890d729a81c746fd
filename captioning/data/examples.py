"""The one record type every dataset reader produces."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class CaptionExample:
    """One (image, caption) pair; an image with five captions gives five examples."""

    image_path: str  # absolute or as given, resolved against the dataset's image folder
    caption: str
    image_id: str  # groups the several captions of one image
    split: str = ""  # "train", "val", "test", or "" when the source does not say
    # What the image shows, when the source says (the synthetic data's COCO `scene`): (shape, colour, x, y) per
    # object, its centre as fractions of the side. Training uses it to teach the model to count.
    objects: tuple = ()
