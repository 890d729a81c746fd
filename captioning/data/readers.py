"""Readers turning the common captioning dataset layouts into CaptionExample lists.

A missing or wrongly shaped file raises ValueError with a one-line message naming
the file. Bad individual rows (missing images, empty captions) are kept here and
left to captioning.data.validation, which skips and counts them.
"""

import csv
import dataclasses
import hashlib
import io
import json
import os

from captioning.data.examples import CaptionExample
from captioning.util.errors import InvalidInput

SPLITS = ("train", "val", "test")
# Other names the datasets use: Karpathy's "restval" is extra training data and
# Flickr8k calls its validation list "dev".
_SPLIT_ALIASES = {"restval": "train", "dev": "val", "validation": "val"}


def read_coco(annotations_path, image_dir):
    """COCO captions JSON; the split comes from the file name (captions_val2014.json -> "val")."""
    images, annotations = _load_json_lists(annotations_path, "images", "annotations")
    file_names = {
        _field(image, "id", annotations_path): _field(image, "file_name", annotations_path) for image in images
    }
    objects = {image["id"]: _scene_objects(image) for image in images}
    split = _split_from_file_name(annotations_path)
    examples = []
    for annotation in annotations:
        image_id = _field(annotation, "image_id", annotations_path)
        if image_id not in file_names:
            raise InvalidInput(
                f"annotations file {annotations_path} has a caption for image_id {image_id!r}, "
                "which is not in its 'images' list"
            )
        examples.append(
            CaptionExample(
                image_path=os.path.join(image_dir, file_names[image_id]),
                caption=_field(annotation, "caption", annotations_path),
                image_id=str(image_id),
                split=split,
                objects=objects[image_id],
            )
        )
    return examples


MAX_SCENE_OBJECTS = 32  # counting targets cost objects² per image and pad every image to the most objects


def _scene_objects(image) -> tuple:
    """The objects of an image's `scene` (written by the synthetic generator), each (shape, colour, x, y); () when
    it has none, more than MAX_SCENE_OBJECTS, or one that does not read as such, which costs that image only its
    counting targets."""
    try:
        listed = image["scene"]["objects"]
        if len(listed) > MAX_SCENE_OBJECTS:
            return ()
        objects = tuple((str(o["shape"]), str(o["color"]), float(o["x"]), float(o["y"])) for o in listed)
    except (KeyError, TypeError, ValueError):
        return ()
    return objects if all(0 <= x <= 1 and 0 <= y <= 1 for _, _, x, y in objects) else ()


def read_karpathy(json_path, image_dir):
    """Karpathy split JSON (dataset_coco.json, dataset_flickr8k.json, dataset_flickr30k.json)."""
    (images,) = _load_json_lists(json_path, "images")
    examples = []
    for image in images:
        # Only the COCO file has "filepath" (train2014/val2014) and "cocoid".
        file_name = _field(image, "filename", json_path)
        image_path = os.path.join(image_dir, image.get("filepath", ""), file_name)
        image_id = image["cocoid"] if "cocoid" in image else _field(image, "imgid", json_path)
        split = _canonical_split(_field(image, "split", json_path), json_path)
        for sentence in _field(image, "sentences", json_path):
            caption = sentence.get("raw") or " ".join(sentence.get("tokens", []))
            examples.append(CaptionExample(image_path, caption, str(image_id), split))
    return examples


def read_flickr(captions_path, image_dir, split_files=None):
    """Flickr8k/30k captions: "<image>#<n>\\t<caption>" lines or Flickr30k's results.csv.

    split_files maps a split name to a file listing its image names one per line
    (Flickr_8k.trainImages.txt, ...devImages.txt as "val" or "dev", ...testImages.txt);
    images that no list names get split "".
    """
    lines = [line for line in _read_text(captions_path, "captions file").splitlines() if line.strip()]
    if lines and lines[0].replace(" ", "").lower().startswith("image_name|"):
        rows = [_parse_results_csv_row(line) for line in lines[1:]]
    else:
        rows = [_parse_token_line(line, captions_path) for line in lines]
    split_of = _read_split_files(split_files or {})
    return [
        CaptionExample(os.path.join(image_dir, name), caption, name, split_of.get(name, "")) for name, caption in rows
    ]


def read_csv_rows(csv_path):
    """(column names, rows) of a CSV with at least an "image_path,caption" header, each row a dict with "" for
    a missing value; ValueError naming the problem. Training data and batch scoring both read CSVs with it."""
    return parse_csv_rows(_read_text(csv_path, "CSV file"), csv_path)


def parse_csv_rows(text, csv_path):
    """read_csv_rows on the text of `csv_path`, for callers that read the file themselves (Beam's filesystems)."""
    # strict: an unclosed quote would otherwise swallow the rest of the file into one caption.
    reader = csv.DictReader(io.StringIO(text), strict=True)
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
    if not {"image_path", "caption"} <= set(reader.fieldnames):
        found = ",".join(reader.fieldnames) or "nothing"
        raise InvalidInput(f"CSV file {csv_path} needs an 'image_path,caption' header, found {found!r}")
    try:
        # Short rows give None for their missing columns.
        rows = [{name: value or "" for name, value in row.items()} for row in reader]
    except csv.Error as error:
        # The inner reader's line_num counts the line that failed; DictReader's lags behind.
        line = reader.reader.line_num
        raise InvalidInput(f"CSV file {csv_path} is malformed at line {line}: {error}") from None
    return reader.fieldnames, rows


def read_csv(csv_path, image_dir=None):
    """CSV with an "image_path,caption[,split]" header.

    Relative image paths are resolved against image_dir, by default the CSV's folder.
    """
    if image_dir is None:
        image_dir = os.path.dirname(os.path.abspath(csv_path))
    examples = []
    for row in read_csv_rows(csv_path)[1]:
        image_path = os.path.join(image_dir, row["image_path"].strip())
        split = row.get("split", "").strip()
        examples.append(
            CaptionExample(
                image_path=image_path,
                caption=row["caption"],
                image_id=image_path,
                split=_canonical_split(split, csv_path) if split else "",
            )
        )
    return examples


_READERS = {"coco": read_coco, "karpathy": read_karpathy, "flickr": read_flickr, "csv": read_csv}


def read_dataset(format, annotations_path, image_dir=None, **kwargs):
    """Read a "coco", "karpathy", "flickr" or "csv" dataset; kwargs go to that reader."""
    if format not in _READERS:
        raise InvalidInput(f"unknown dataset format {format!r}; expected one of: {', '.join(_READERS)}")
    if image_dir is None and format != "csv":
        raise InvalidInput(f"dataset format {format!r} needs image_dir")
    return _READERS[format](annotations_path, image_dir, **kwargs)


def assign_validation_split(examples, fraction=0.05, seed=0):
    """Carve a validation set out of the training images when the source has none.

    All captions of an image move together, so no validation image is also seen
    in training. Images are picked by a hash of seed and image_id (Python's hash()
    changes per process), so the same call gives the same split on every run.
    Unlabelled ("") examples become "train". Returns a new list.
    """
    if not 0 <= fraction < 1:
        raise InvalidInput(f"validation fraction must be in [0, 1), got {fraction}")
    if any(example.split == "val" for example in examples):
        return list(examples)
    trainable = ("train", "")
    candidates = sorted(
        {example.image_id for example in examples if example.split in trainable},
        key=lambda image_id: hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest(),
    )
    n_val = round(fraction * len(candidates))
    if fraction > 0:
        n_val = max(n_val, 1)  # a tiny dataset still gets a validation image...
    n_val = max(0, min(n_val, len(candidates) - 1))  # ...and keeps one for training
    val_ids = set(candidates[:n_val])
    return [
        dataclasses.replace(example, split="val" if example.image_id in val_ids else "train")
        if example.split in trainable
        else example
        for example in examples
    ]


def group_by_split(examples):
    """{split: examples}, keeping the input order within each split."""
    groups = {}
    for example in examples:
        groups.setdefault(example.split, []).append(example)
    return groups


def _read_text(path, what):
    if not os.path.isfile(path):
        raise InvalidInput(f"{what} {path} does not exist")
    with open(path, "rb") as file:
        return decode_text(file.read(), path, what)


def decode_text(data, path, what):
    """The text of a file's bytes; ValueError naming `what` and `path` when they are not UTF-8."""
    try:
        # utf-8-sig drops the byte-order mark spreadsheet programs put on CSVs; bytes.decode leaves newlines
        # inside quoted captions as they are, for the csv module to see.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{what} {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None


def _load_json_lists(path, *keys):
    """The lists under `keys` of the JSON object in `path`."""
    try:
        data = json.loads(_read_text(path, "annotations file"))
    except json.JSONDecodeError as error:
        raise InvalidInput(f"annotations file {path} is not valid JSON: {error}") from None
    for key in keys:
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise InvalidInput(f"annotations file {path} has no {key!r} list")
    return [data[key] for key in keys]


def _field(record, key, path):
    try:
        return record[key]
    except (KeyError, TypeError):
        raise InvalidInput(f"annotations file {path} has an entry without {key!r}: {record!r:.100}") from None


def _canonical_split(name, source):
    split = _SPLIT_ALIASES.get(name, name)
    if split not in SPLITS:
        allowed = ", ".join([*SPLITS, *_SPLIT_ALIASES])
        raise InvalidInput(f"{source}: unknown split {name!r}; expected one of: {allowed}")
    return split


def _split_from_file_name(path):
    """COCO names its files captions_train2014.json, captions_val2014.json, ..."""
    file_name = os.path.basename(path).lower()
    return next((split for split in SPLITS if split in file_name), "")


def _parse_token_line(line, path):
    # Image names have no spaces, so the first whitespace ends the name; this also
    # reads the copies of Flickr8k.token.txt whose tabs became spaces.
    name, _, caption = line.strip().replace("\t", " ", 1).partition(" ")
    if "#" not in name:
        raise InvalidInput(f"captions file {path} has a line that is not '<image>#<n><TAB><caption>': {line!r:.100}")
    return name.rpartition("#")[0], caption.strip()


def _parse_results_csv_row(line):
    name, _, rest = line.partition("|")
    _, has_caption, caption = rest.partition("|")
    # One row of the public Flickr30k results.csv lacks its second '|'; an empty
    # caption makes validation skip and count it instead of training on "4 A dog ...".
    return name.strip(), caption.strip() if has_caption else ""


def _read_split_files(split_files):
    """{image name: split} from lists of image names, one per line."""
    split_of = {}
    for split_name, path in split_files.items():
        split = _canonical_split(split_name, "split_files")
        for line in _read_text(path, "split file").splitlines():
            if line.strip():
                split_of[line.strip()] = split
    return split_of
