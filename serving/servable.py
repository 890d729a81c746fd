"""One loaded version of a SavedModel and the signatures it serves."""

from dataclasses import dataclass

import tensorflow as tf
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import get_model_metadata_pb2

from captioning.util.errors import InvalidInput
from serving.status import from_tf_error

SERVING_TAG = "serve"


@dataclass(frozen=True)
class Signature:
    """A callable signature plus what is needed to validate requests for it."""

    name: str
    function: object  # the ConcreteFunction from SavedModel.signatures
    inputs: dict  # alias -> tf.TensorSpec, in the function's flat argument order
    outputs: dict  # alias -> tf.TensorSpec
    feed_names: dict  # alias -> graph tensor name from the SignatureDef

    def run(self, inputs):
        """Calls the signature on numpy inputs; returns numpy outputs by alias.

        Model errors (a corrupt image, an empty text, ...) become ServingErrors
        carrying the model's status code and message.
        """
        tensors = {alias: tf.constant(value, dtype=self.inputs[alias].dtype) for alias, value in inputs.items()}
        try:
            outputs = self.function(**tensors)
        except tf.errors.OpError as error:
            raise from_tf_error(error) from error
        return {alias: tensor.numpy() for alias, tensor in outputs.items()}


class Servable:
    """A loaded model version: `signatures` to run, `signature_defs` to describe.

    `signature_defs` is the SignatureDef map from saved_model.pb exactly as TF
    Serving reports it in GetModelMetadata.
    """

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = _read_signature_defs(path)
        self._model = tf.saved_model.load(path, tags=[SERVING_TAG])
        self.signatures = {
            key: _signature(key, function, self.signature_defs[key]) for key, function in self._model.signatures.items()
        }

    def signature_def_map(self):
        """The metadata TF Serving returns under its one metadata field, signature_def."""
        return get_model_metadata_pb2.SignatureDefMap(signature_def=self.signature_defs)


def _read_signature_defs(path):
    saved_model = loader_impl.parse_saved_model(path)
    for meta_graph in saved_model.meta_graphs:
        if SERVING_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise InvalidInput(f"SavedModel at {path} has no MetaGraph tagged {SERVING_TAG!r}")


def _signature(name, function, signature_def):
    _, input_specs = function.structured_input_signature
    return Signature(
        name=name,
        function=function,
        # tf.nest flattens keyword arguments in sorted order; keeping that order
        # lets error messages name arguments by their index like TF does.
        inputs=dict(sorted(input_specs.items())),
        outputs=dict(sorted(function.structured_outputs.items())),
        feed_names={alias: info.name for alias, info in signature_def.inputs.items()},
    )
