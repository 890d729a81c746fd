"""Image-text similarity from a captioning model."""

from captioning.util.logging_setup import quiet_tensorflow_unless_verbose

quiet_tensorflow_unless_verbose()  # before any module of the package imports TensorFlow
