"""The one record type every dataset reader produces."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class CaptionExample:
    """One (image, caption) pair; an image with five captions gives five examples."""

    image_path: str  # absolute or as given, resolved against the dataset's image folder
    caption: str
    image_id: str  # groups the several captions of one image
    split: str = ""  # "train", "val", "test", or "" when the source does not say
