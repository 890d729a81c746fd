"""Reduced precision where the hardware has it: mixed_float16 on GPUs, mixed_bfloat16 on CPUs with bf16 units
(AVX512-BF16 or AMX-BF16), full float32 elsewhere. Variables stay float32, and so do the logits (the decoder's
output layer is float32) and every score computed from them."""

import contextlib

import keras
import tensorflow as tf

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    try:
        with open(cpuinfo_path, encoding="utf-8") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split()}
    except OSError:  # not Linux: no way to tell here, so no bf16
        return False
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def mixed_policy(gpus: bool = None, cpu_bf16: bool = None) -> str:
    """The Keras dtype policy `--mixed_precision` asks for on this machine ("float32" when it has no unit for
    reduced precision)."""
    gpus = bool(tf.config.list_logical_devices("GPU")) if gpus is None else gpus
    if gpus:
        return "mixed_float16"
    return "mixed_bfloat16" if (cpu_has_bf16() if cpu_bf16 is None else cpu_bf16) else "float32"


def needs_loss_scaling(policy: str) -> bool:
    return policy == "mixed_float16"  # float16's narrow exponent underflows small gradients; bfloat16's does not


@contextlib.contextmanager
def dtype_policy(policy: str):
    """Layers built inside the block use `policy`; the global policy is restored after (it is process-wide)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
