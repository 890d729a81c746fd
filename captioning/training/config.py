"""A training run's settings as a plain object: flags only override it. It checks itself when built."""

import dataclasses

from captioning.model.config import ModelConfig
from captioning.util.config_fields import Rule, at_least, check_fields, setting

_POSITIVE = at_least(1)


@dataclasses.dataclass
class TrainingConfig:
    global_batch_size: int = setting(
        64, "Global batch size, split evenly across replicas.", _POSITIVE, flag="batch_size"
    )
    epochs: int = setting(12, "Epochs.", at_least(1, ": with 0 there is nothing to train"))
    steps_per_epoch: int = setting(250, "Steps per epoch.", _POSITIVE)
    learning_rate: float = setting(
        2e-3, "Peak learning rate (warm-up, then cosine decay).", Rule(lambda value: value > 0, "must be more than 0")
    )
    warmup_steps: int = setting(200, "Warm-up steps.", Rule(lambda value: value >= 0, "must be 0 or more"))
    weight_decay: float = setting(0.01, None, Rule(lambda value: value >= 0, "must be 0 or more"))
    checkpoint_every_steps: int = setting(100, "Checkpoint every N steps.", _POSITIVE, flag="checkpoint_every")
    steps_per_loop: int = setting(
        1,
        "Optimizer steps per tf.function call (as Keras' steps_per_execution): fewer "
        "host round trips; metrics are read once per call.",
        _POSITIVE,
    )
    log_every_steps: int = setting(
        50,
        "Progress line every N steps when the output is not a terminal (a terminal gets a live bar).",
        _POSITIVE,
        flag="log_every",
    )
    validation_steps: int = setting(20, None, _POSITIVE)
    mixed_precision: bool = setting(
        False,
        "Reduced precision where the hardware has it: mixed_float16 on GPUs, "
        "mixed_bfloat16 on CPUs with bf16 units, float32 otherwise.",
    )
    contrastive_weight: float = setting(
        0.1,
        "Weight of the contrastive head's InfoNCE loss beside the caption loss; 0 trains no contrastive head.",
        Rule(lambda value: value >= 0, "must be 0 (no head) or more"),
    )
    count_loss_weight: float = setting(
        1.0,
        "Weight of the counting loss, which trains the cell context to name how "
        "many of each kind a scene holds; only where the data has scenes (the "
        "synthetic data does) and the model a context. 0: none.",
        Rule(lambda value: value >= 0, "must be 0 (no counting loss) or more"),
    )
    seed: int = setting(0, "Data order and image-dropout seed.")

    def __post_init__(self):
        check_fields(self)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def model_to_train(model: ModelConfig, training: TrainingConfig) -> ModelConfig:
    """The model these settings train: a contrastive loss weight of 0 trains no contrastive head, so none is built."""
    return model if training.contrastive_weight else dataclasses.replace(model, contrastive_dim=0)
