"""One training run from data to exported SavedModel: what `python train.py` does."""

import dataclasses
import os

from captioning.data import inputs, tfrecords
from captioning.data.datasets import load_examples
from captioning.data.text import Vocabulary
from captioning.export import layout
from captioning.export.saved_model import ScoringModule, export_saved_model, next_version
from captioning.model.config import ModelConfig
from captioning.training import artifacts, counting, distribute
from captioning.training.config import TrainingConfig, model_to_train
from captioning.training.loop import Trainer
from captioning.util import atomic
from captioning.util.errors import InvalidInput


def _vocabulary_and_config(run_dir, model_config, train_captions, max_vocab_size, min_word_count, log, chief=True):
    """A resumed run keeps the vocabulary and model shape it started with, whatever the flags say now. Every
    worker builds the same vocabulary from the same data; only the chief writes it."""
    vocabulary_path = os.path.join(run_dir, layout.VOCABULARY_FILE)
    config_path = os.path.join(run_dir, layout.CONFIG_FILE)
    if os.path.exists(vocabulary_path) and os.path.exists(config_path):
        saved = ModelConfig.load(config_path)
        if dataclasses.replace(saved, vocab_size=0) != dataclasses.replace(model_config, vocab_size=0):
            log(f"resuming with the model configuration saved in {config_path}")
        return Vocabulary.load(vocabulary_path), saved
    vocabulary = Vocabulary.build(train_captions, max_vocab_size, min_word_count)
    model_config = dataclasses.replace(model_config, vocab_size=len(vocabulary))
    if chief:
        vocabulary.save(vocabulary_path)
        atomic.write_text(config_path, model_config.to_json())
    return vocabulary, model_config


def run_training(
    model_config: ModelConfig,
    training_config: TrainingConfig,
    format: str,
    annotations: str,
    image_dir: str,
    output_dir: str,
    val_fraction: float = 0.05,
    max_steps: int = None,
    export: bool = True,
    max_vocab_size: int = 10000,
    min_word_count: int = 1,
    reader_kwargs=None,
    strategy=None,
    log=print,
    tfrecord_dir: str = None,
    after_checkpoint=None,
):
    """Trains (resuming if a checkpoint exists) and, once the configured steps are done, saves the model
    beside `output_dir` and exports `output_dir/export/<version>/`. Returns the export path or None.
    With `tfrecord_dir` (scripts/make_tfrecords.py) it reads that directory's train and val splits instead of the
    dataset files. In a multi-worker job (TF_CONFIG) only the chief writes files; the others return None.
    `after_checkpoint` goes to Trainer.fit."""
    strategy = strategy or distribute.make_strategy()  # first: the multi-worker runtime is set up only at start
    model_config = model_to_train(model_config, training_config)
    chief = distribute.is_chief(strategy)
    train_data, val_data, train_captions = _training_data(
        format, annotations, image_dir, val_fraction, log, reader_kwargs, tfrecord_dir
    )
    log(f"{len(train_captions)} training and {inputs.size(val_data) if val_data else 0} validation captions")
    run_dir = os.path.join(output_dir, "ckpt")
    os.makedirs(run_dir, exist_ok=True)
    vocabulary, model_config = _vocabulary_and_config(
        run_dir, model_config, train_captions, max_vocab_size, min_word_count, log, chief
    )
    training_config = counting.where_possible(training_config, model_config.context_heads, train_data, log)
    trainer = Trainer(model_config, training_config, vocabulary, output_dir, strategy, train_captions=train_captions)
    log(
        f"training on {trainer.strategy.num_replicas_in_sync} replica(s) "
        f"({', '.join(trainer.strategy.extended.worker_devices)})"
    )
    trained_before = trainer.saved_step() >= training_config.total_steps
    trainer.fit(train_data, val_data, max_steps=max_steps, log=log, after_checkpoint=after_checkpoint)
    try:
        if int(trainer.step.numpy()) < training_config.total_steps:
            log(f"stopped at step {int(trainer.step.numpy())} of {training_config.total_steps}; run again to resume")
            return None
        if not chief:
            return None
        export_base = os.path.join(output_dir, "export")
        exported = next_version(export_base) - 1
        if trained_before and exported:
            # A rerun of a finished run: a second, identical version would make TF Serving swap models for nothing.
            log(
                f"the model in {output_dir} is already trained ({training_config.total_steps} steps) and exported as "
                f"version {exported} ({os.path.join(export_base, str(exported))}); nothing new exported "
                "(give a new --output_dir to train another)"
            )
            return None
        dataset = (
            {"format": "tfrecord", "tfrecord_dir": tfrecord_dir}
            if tfrecord_dir
            else {"format": format, "annotations": annotations, "image_dir": image_dir}
        )
        dataset.update(train_captions=len(train_captions), val_captions=inputs.size(val_data) if val_data else 0)
        return _save_and_export(trainer, vocabulary, output_dir, {**trainer.metadata(), "dataset": dataset}, export)
    finally:
        distribute.barrier(strategy)  # the other workers wait for the chief's files; all end together


def _training_data(format, annotations, image_dir, val_fraction, log, reader_kwargs, tfrecord_dir):
    """-> (train data, val data or None, train captions): examples read from the dataset files, or TFRecords."""
    if tfrecord_dir:
        train, val = tfrecords.open_split(tfrecord_dir, "train"), tfrecords.open_split(tfrecord_dir, "val")
        if train is None:
            raise InvalidInput(f"{tfrecord_dir} has no train split")
        return train, val, train.captions()
    splits = load_examples(format, annotations, image_dir, val_fraction, log=log, **(reader_kwargs or {}))
    return splits["train"], splits.get("val", []), [e.caption for e in splits["train"]]


def _save_and_export(trainer, vocabulary, output_dir, metadata, export):
    artifacts.save_trained_model(output_dir, trainer.model, vocabulary, metadata)
    if not export:
        return None
    extra = [
        os.path.join(output_dir, name) for name in (layout.CONFIG_FILE, layout.VOCABULARY_FILE, layout.METADATA_FILE)
    ]
    return export_saved_model(ScoringModule(trainer.model, vocabulary), os.path.join(output_dir, "export"), extra)
