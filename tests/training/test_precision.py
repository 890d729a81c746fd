"""--mixed_precision: the policy follows the hardware, logits and scores stay float32, nothing leaks globally."""

import dataclasses

import keras
import numpy as np

from captioning.training import precision
from tests.helpers import TINY_MODEL, TINY_TRAINING


def test_the_policy_follows_the_hardware(tmp_path):
    assert precision.mixed_policy(gpus=True, cpu_bf16=True) == "mixed_float16"
    assert precision.mixed_policy(gpus=False, cpu_bf16=True) == "mixed_bfloat16"
    assert precision.mixed_policy(gpus=False, cpu_bf16=False) == "float32"
    assert precision.needs_loss_scaling("mixed_float16") and not precision.needs_loss_scaling("mixed_bfloat16")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx512f avx512_bf16\n")
    assert precision.cpu_has_bf16(str(cpuinfo))
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx2\n")
    assert not precision.cpu_has_bf16(str(cpuinfo)) and not precision.cpu_has_bf16(str(tmp_path / "absent"))


def test_a_bfloat16_model_keeps_float32_logits_and_the_global_policy(tmp_path):
    from captioning.data.text import Vocabulary
    from captioning.training.loop import Trainer

    vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary))
    with precision.dtype_policy("mixed_bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"
    trainer = Trainer(config, dataclasses.replace(TINY_TRAINING, mixed_precision=True), vocabulary, str(tmp_path))
    assert keras.config.dtype_policy().name == "float32"
    logits = trainer.model(np.zeros((1, 32, 32, 3), np.float32), np.zeros((1, 4), np.int32))
    assert logits.dtype == "float32"
    assert all(w.dtype == "float32" for w in trainer.model.weights)
