"""ModelConfig checks itself: built from Python, from flags or from a saved config.json, a value that breaks a rule
is one line naming the field and the rule."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from captioning.model.config import ModelConfig
from captioning.util.config_fields import ConfigError, command_line_fields, flag_name
from captioning.util.errors import InvalidInput
from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "values, message",
    [
        ({"embed_dim": 0}, "ModelConfig.embed_dim = 0: must be at least 1"),
        ({"embed_dim": 30, "num_heads": 4}, "ModelConfig.embed_dim = 30: must be a multiple of num_heads (4)"),
        ({"max_length": 1}, "ModelConfig.max_length = 1: must be at least 2"),
        ({"dropout": 1.0}, "ModelConfig.dropout = 1.0: must be in [0, 1)"),
        ({"image_dropout": -0.5}, "ModelConfig.image_dropout = -0.5: must be in [0, 1]"),
        ({"context_heads": -1}, "ModelConfig.context_heads = -1: must be 0 (no cell context) or more"),
        ({"contrastive_dim": -1}, "ModelConfig.contrastive_dim = -1: must be 0 (no head) or more"),
        ({"num_layers": "2"}, "ModelConfig.num_layers = '2': must be of type int"),
    ],
)
def test_a_value_that_breaks_a_rule_is_named_in_one_line(values, message):
    with pytest.raises(ConfigError) as raised:
        ModelConfig(**values)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert isinstance(raised.value, InvalidInput) and isinstance(raised.value, ValueError)  # callers catch either


def test_the_image_size_follows_the_backbone_when_not_given():
    assert ModelConfig().image_size == 64
    assert ModelConfig(backbone="EfficientNetB0").image_size == 224
    assert ModelConfig(backbone="EfficientNetB0", image_size=96).image_size == 96


def test_a_saved_config_is_checked_when_loaded_and_round_trips(tmp_path):
    config = ModelConfig(vocab_size=50, embed_dim=64, num_heads=2)
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert ModelConfig.load(str(path)) == config
    path.write_text(json.dumps({**dataclasses.asdict(config), "num_heads": 3}))
    with pytest.raises(ConfigError, match=f"^{path}: ModelConfig.embed_dim = 64: must be a multiple of num_heads"):
        ModelConfig.load(str(path))
    path.write_text(json.dumps({**dataclasses.asdict(config), "depth": 3}))
    with pytest.raises(ConfigError, match="unknown model config keys: depth"):
        ModelConfig.load(str(path))


# train.py's flags are generated from the configs' fields: each field with help text has a flag with its default and
# help, and a value the field's rule refuses is refused at flag parsing with the same words.
FLAGS_PROGRAM = """
import json, sys
from absl import flags
from captioning.commands import train
train.define_flags()
print(json.dumps({name: [flags.FLAGS[name].default, flags.FLAGS[name].help] for name in flags.FLAGS}))
"""


def test_train_flags_are_the_config_fields():
    from captioning.training.config import TrainingConfig

    result = subprocess.run(
        [sys.executable, "-c", FLAGS_PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    defined = json.loads(result.stdout)
    for config_class in (ModelConfig, TrainingConfig):
        for field in command_line_fields(config_class):
            assert defined[flag_name(field)] == [field.default, field.metadata["help"]], field.name
    assert {"vocab_size", "weight_decay", "validation_steps"}.isdisjoint(defined)  # no help: not on the command line
    result = subprocess.run(
        [sys.executable, "train.py", "--num_heads", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert (
        result.returncode == 2
        and result.stderr.strip() == "error: flag --num_heads=0: must be at least 1 (see --helpshort)"
    ), result.stderr[-2000:]
    result = subprocess.run(
        [sys.executable, "train.py", "--embed_dim", "30", "--num_heads", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert (
        result.returncode == 2
        and result.stderr.strip()
        == "error: ModelConfig.embed_dim = 30: must be a multiple of num_heads (4), which split it evenly"
    ), result.stderr
