"""Run an exported model's named signatures in this process or on a server, with the same call:

    model = open_model(model_dir="checkpoints/export")          # or open_model(server="localhost:8500")
    model.run("encode_image", {"image_bytes": [png]})["image_features"]

Inputs are lists of bytes/str (DT_STRING) or numpy arrays/scalars of the signature's dtype; outputs are numpy.
Every runner (LocalModel, RemoteModel, and the server's in-process ServedModel) is a ModelRunner: callers use
only what that protocol names (tests/serving/test_model_runners.py runs each against it).
"""

from typing import Protocol, runtime_checkable

import numpy as np

from captioning.util.errors import InvalidInput, Unsupported, tf_error_line


class MissingSignatureError(Unsupported, LookupError):
    """The model was exported without a signature this feature needs."""


class InvalidInputError(InvalidInput):
    """The model rejected the inputs (INVALID_ARGUMENT: an undecodable image, a text without words)."""


@runtime_checkable
class ModelRunner(Protocol):
    """One exported model version, called by signature name."""

    path: str  # where the model is, for messages: a version directory, or model@server

    def run(self, name: str, inputs: dict) -> dict:
        """Signature `name` on `inputs` -> {output: numpy array}; MissingSignatureError when the model has no such
        signature, InvalidInputError when the model rejects the inputs."""

    def signature_names(self) -> set:
        """The signatures the model was exported with."""

    def output_names(self, name: str) -> set:
        """The outputs of signature `name` (whether a score is there, e.g. the contrastive head's);
        MissingSignatureError when the model has no such signature."""

    def extra_file(self, name: str) -> str | None:
        """The path of a file exported beside the model (captioning.export.layout), or None where the caller cannot
        reach the model's files (a remote server)."""


def _missing(name, where):
    return MissingSignatureError(
        f"{where} has no {name!r} signature; re-export the model with this version of captioning.export.saved_model"
    )


class LocalModel:
    """The newest SavedModel under `model_dir` (or that version directory), loaded in this process."""

    def __init__(self, model_dir: str):
        from captioning.inference.local import SavedModelScorer  # imports TensorFlow: only when needed

        self._scorer = SavedModelScorer(model_dir)
        self.path = self._scorer.path

    def run(self, name: str, inputs: dict) -> dict:
        import tensorflow as tf  # loaded by SavedModelScorer already; named here for its error class

        if name not in self._scorer.model.signatures:
            raise _missing(name, self.path)
        try:
            return self._scorer.run(name, inputs)
        except tf.errors.InvalidArgumentError as error:
            raise InvalidInputError(tf_error_line(error.message)) from None

    def extra_file(self, name: str) -> str:
        return self._scorer.extra_file(name)

    def signature_names(self) -> set:
        return set(self._scorer.model.signatures)

    def output_names(self, name: str) -> set:
        if name not in self._scorer.model.signatures:
            raise _missing(name, self.path)
        return set(self._scorer.model.signatures[name].structured_outputs)


class RemoteModel:
    """A model on a TF Serving-compatible gRPC server, through grpc_client.PredictionClient. `version` pins one
    model version: features from encode_image mean nothing to another version, so a long job that must not
    straddle a version swap pins it."""

    def __init__(self, server: str, model_name: str = "captioner", version: int = None):
        self.path = f"{model_name}@{server}" + (f" version {version}" if version else "")
        self._server, self._model_name, self._version = server, model_name, version
        self._client = None

    def _connected(self):
        # tensorflow_serving's protos import TensorFlow: only when a server is called
        from captioning.inference.grpc_client import PredictionClient

        if self._client is None:
            self._client = PredictionClient(self._server, model_name=self._model_name, version=self._version)
        return self._client

    def run(self, name: str, inputs: dict) -> dict:
        from captioning.inference.grpc_client import PredictionError  # loaded by _connected already

        client = self._connected()
        try:
            return client.predict(
                {key: np.asarray(value) if np.isscalar(value) else value for key, value in inputs.items()},
                signature_name=name,
            )
        except PredictionError as error:
            if error.code.name == "FAILED_PRECONDITION":  # TF Serving's code for a signature the model lacks
                raise _missing(name, self.path) from None
            if error.code.name == "INVALID_ARGUMENT":
                raise InvalidInputError(tf_error_line(error.details)) from None
            raise

    def signature_names(self) -> set:
        """From the server's GetModelMetadata: the signatures of the version a call would reach now."""
        return set(self._connected().signature_outputs())

    def output_names(self, name: str) -> set:
        outputs = self._connected().signature_outputs()
        if name not in outputs:
            raise _missing(name, self.path)
        return outputs[name]

    def extra_file(self, name: str) -> None:
        """Files beside a served model are not reachable from the client."""
        return None


def open_model(model_dir: str = None, server: str = None, model_name: str = "captioner", version: int = None):
    """A LocalModel, or with `server` (HOST:PORT) a RemoteModel."""
    return RemoteModel(server, model_name, version) if server else LocalModel(model_dir)
