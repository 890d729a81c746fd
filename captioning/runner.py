"""One training run from data to exported SavedModel: what `python train.py` does."""

import dataclasses
import os

from captioning import artifacts, atomic
from captioning.config import ModelConfig, TrainingConfig
from captioning.data.datasets import load_examples
from captioning.text import Vocabulary


def _vocabulary_and_config(run_dir, model_config, train_examples, max_vocab_size, min_word_count, log, chief=True):
    """A resumed run keeps the vocabulary and model shape it started with, whatever the flags say now. Every
    worker builds the same vocabulary from the same data; only the chief writes it."""
    vocabulary_path = os.path.join(run_dir, artifacts.VOCABULARY_FILE)
    config_path = os.path.join(run_dir, artifacts.CONFIG_FILE)
    if os.path.exists(vocabulary_path) and os.path.exists(config_path):
        saved = ModelConfig.load(config_path)
        if dataclasses.replace(saved, vocab_size=0) != dataclasses.replace(model_config, vocab_size=0):
            log(f"resuming with the model configuration saved in {config_path}")
        return Vocabulary.load(vocabulary_path), saved
    vocabulary = Vocabulary.build([e.caption for e in train_examples], max_vocab_size, min_word_count)
    model_config = dataclasses.replace(model_config, vocab_size=len(vocabulary))
    if chief:
        vocabulary.save(vocabulary_path)
        atomic.write_text(config_path, model_config.to_json())
    return vocabulary, model_config


def run_training(model_config: ModelConfig, training_config: TrainingConfig, format: str, annotations: str,
                 image_dir: str, output_dir: str, val_fraction: float = 0.05, max_steps: int = None,
                 export: bool = True, max_vocab_size: int = 10000, min_word_count: int = 1, reader_kwargs=None,
                 strategy=None, log=print):
    """Trains (resuming if a checkpoint exists) and, once the configured steps are done, saves the model
    beside `output_dir` and exports `output_dir/export/<version>/`. Returns the export path or None.
    In a multi-worker job (TF_CONFIG) only the chief writes files; the others return None."""
    from captioning import distribute
    from captioning.training import Trainer

    strategy = strategy or distribute.make_strategy()  # first: the multi-worker runtime is set up only at start
    chief = distribute.is_chief(strategy)
    splits = load_examples(format, annotations, image_dir, val_fraction, log=log, **(reader_kwargs or {}))
    train_examples, val_examples = splits["train"], splits.get("val", [])
    log(f"{len(train_examples)} training and {len(val_examples)} validation captions")
    run_dir = os.path.join(output_dir, "ckpt")
    os.makedirs(run_dir, exist_ok=True)
    vocabulary, model_config = _vocabulary_and_config(run_dir, model_config, train_examples, max_vocab_size,
                                                      min_word_count, log, chief)
    trainer = Trainer(model_config, training_config, vocabulary, output_dir, strategy,
                      train_captions=[e.caption for e in train_examples])
    log(f"training on {trainer.strategy.num_replicas_in_sync} replica(s) "
        f"({', '.join(trainer.strategy.extended.worker_devices)})")
    trainer.fit(train_examples, val_examples, max_steps=max_steps, log=log)
    if int(trainer.step.numpy()) < training_config.total_steps:
        log(f"stopped at step {int(trainer.step.numpy())} of {training_config.total_steps}; run again to resume")
        return None
    try:
        if not chief:
            return None
        dataset = {"format": format, "annotations": annotations, "image_dir": image_dir,
                   "train_captions": len(train_examples), "val_captions": len(val_examples)}
        return _save_and_export(trainer, vocabulary, output_dir, {**trainer.metadata(), "dataset": dataset}, export)
    finally:
        distribute.barrier(strategy)  # the other workers wait for the chief's files


def _save_and_export(trainer, vocabulary, output_dir, metadata, export):
    from captioning.export import ScoringModule, export_saved_model

    artifacts.save_trained_model(output_dir, trainer.model, vocabulary, metadata)
    if not export:
        return None
    extra = [os.path.join(output_dir, name) for name in
             (artifacts.CONFIG_FILE, artifacts.VOCABULARY_FILE, artifacts.METADATA_FILE)]
    return export_saved_model(ScoringModule(trainer.model, vocabulary), os.path.join(output_dir, "export"), extra)
