"""The names of an export's files on disk (docs/architecture.md, "The SavedModel on disk"), free of TensorFlow.

<export base>/<version>/saved_model.pb, variables/ and EXTRA_FILES_DIR/ with the files below; a version is written
under TEMPORARY_PREFIX and renamed into place. A training run's directory uses the same file names.
"""

SAVED_MODEL_FILE = "saved_model.pb"
EXTRA_FILES_DIR = "assets.extra"  # beside the model: config, vocabulary, training metadata (TF Serving ignores it)
CONFIG_FILE = "config.json"  # ModelConfig fields
VOCABULARY_FILE = "vocabulary.txt"  # one token per line, its id the line number
METADATA_FILE = "training_metadata.json"  # model and training config, steps, history, dataset
RANKING_FILE = "ranking.json"  # the alpha evaluation chose (captioning.inference.ranking); optional
TEMPORARY_PREFIX = ".tmp-"  # a version being written: `.tmp-<version>-<pid>`, never read as a version


def temporary_name(version: int, pid: int) -> str:
    return f"{TEMPORARY_PREFIX}{version}-{pid}"
