"""TrainingConfig checks itself on construction, and the rule tying the model to its training lives beside it."""

import pytest

from captioning.model.config import ModelConfig
from captioning.training.config import TrainingConfig, model_to_train
from captioning.util.config_fields import ConfigError


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": 0}, "TrainingConfig.epochs = 0: must be at least 1: with 0 there is nothing to train"),
        ({"global_batch_size": -4}, "TrainingConfig.global_batch_size = -4: must be at least 1"),
        ({"learning_rate": 0.0}, "TrainingConfig.learning_rate = 0.0: must be more than 0"),
        ({"contrastive_weight": -1.0}, "TrainingConfig.contrastive_weight = -1.0: must be 0 (no head) or more"),
        ({"count_loss_weight": -1.0}, "TrainingConfig.count_loss_weight = -1.0: must be 0 (no counting loss) or more"),
        ({"steps_per_loop": 0}, "TrainingConfig.steps_per_loop = 0: must be at least 1"),
    ],
)
def test_a_value_that_breaks_a_rule_is_named(values, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        TrainingConfig(**values)


def test_a_contrastive_weight_of_0_trains_no_contrastive_head():
    model = ModelConfig()
    assert model_to_train(model, TrainingConfig()).contrastive_dim == model.contrastive_dim > 0
    assert model_to_train(model, TrainingConfig(contrastive_weight=0)).contrastive_dim == 0
