"""Python client for TF Serving's gRPC Predict API (TF Serving or serving.server).

with PredictionClient("127.0.0.1:8500") as client:
    scores = client.score([png_bytes], ["a dog on a beach"])
    scores["log_likelihood"]  # np.ndarray of shape [1]
"""

import grpc
import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from captioning.inference import tensors
from captioning.inference.rows import MAX_ROWS_PER_CALL
from captioning.util.errors import Unavailable

# Images can be large; allow what the server allows.
MAX_MESSAGE_BYTES = 2**31 - 1
# The one metadata field of TF Serving's GetModelMetadata: the model's SignatureDefs.
SIGNATURE_DEF_FIELD = "signature_def"


class PredictionError(Unavailable):
    """A failed Predict call; `code` is the grpc.StatusCode, `details` the server's message."""

    def __init__(self, code, details):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class PredictionClient:
    def __init__(self, target, model_name="captioner", signature_name="serving_default", timeout=30.0, version=None):
        """`target` is "host:port"; `version` pins a model version (default: newest)."""
        self.model_name = model_name
        self.signature_name = signature_name
        self.timeout = timeout
        self.version = version
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, inputs, output_filter=(), signature_name=None):
        """Runs a signature on {input name: array or list}; returns {output name: array}.

        `signature_name` defaults to the client's.  Raises PredictionError
        carrying the gRPC status code and message.
        """
        request = predict_pb2.PredictRequest()
        self._name_model(request.model_spec)
        request.model_spec.signature_name = signature_name or self.signature_name
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tensors.to_proto(value, use_tensor_content=True))
        request.output_filter.extend(output_filter)
        response = self._call(self._stub.Predict, request)
        return {name: tensors.from_proto(proto) for name, proto in response.outputs.items()}

    def signature_outputs(self) -> dict:
        """{signature name: set of its output names} of the model version a call reaches (GetModelMetadata)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[SIGNATURE_DEF_FIELD])
        self._name_model(request.model_spec)
        response = self._call(self._stub.GetModelMetadata, request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_defs)
        return {
            name: set(signature.outputs)
            for name, signature in signature_defs.signature_def.items()
            if not name.startswith("__")
        }  # TensorFlow's own __saved_model_init_op is no signature to call

    def _name_model(self, model_spec):
        model_spec.name = self.model_name
        if self.version is not None:
            model_spec.version.value = self.version

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise PredictionError(error.code(), error.details()) from None

    def score(self, image_bytes, texts, rows_per_request=MAX_ROWS_PER_CALL):
        """Scores row-aligned (image, text) pairs with the client's signature.

        `image_bytes` are encoded JPEG/PNG/BMP/GIF files, `texts` str; returns
        {output name: array of len(texts)}.  Requests carry at most
        `rows_per_request` pairs, the most a batching TF Serving accepts.
        """
        if len(image_bytes) != len(texts):
            raise ValueError(f"{len(image_bytes)} images but {len(texts)} texts")
        parts = [
            self.predict(
                {
                    "image_bytes": tensors.string_array(image_bytes[i : i + rows_per_request]),
                    "text": tensors.string_array(texts[i : i + rows_per_request]),
                }
            )
            for i in range(0, max(len(texts), 1), rows_per_request)
        ]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def score_matrix(self, image_bytes, texts):
        """Every image against every text: {output name: array [len(images), len(texts)]}."""
        return self.predict(
            {"image_bytes": tensors.string_array(image_bytes), "text": tensors.string_array(texts)},
            signature_name="score_matrix",
        )

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
