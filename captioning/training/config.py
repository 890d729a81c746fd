"""A training run's settings as a plain object: flags only override it."""

import dataclasses


@dataclasses.dataclass
class TrainingConfig:
    global_batch_size: int = 64  # split evenly across replicas
    epochs: int = 12
    steps_per_epoch: int = 250
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    checkpoint_every_steps: int = 100
    steps_per_loop: int = 1  # optimizer steps per tf.function call (Keras' steps_per_execution)
    log_every_steps: int = 50  # progress lines when the output is a file or pipe, not a terminal
    validation_steps: int = 20
    mixed_precision: bool = False
    contrastive_weight: float = 0.1  # weight of the contrastive head's InfoNCE loss beside the caption loss
    count_loss_weight: float = 1.0  # weight of the counting loss (training/counting.py) where the data has scenes
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch
