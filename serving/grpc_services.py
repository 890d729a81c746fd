"""gRPC PredictionService and ModelService with TF Serving's behaviour.

Classify, Regress, MultiInference and HandleReloadConfigRequest are left to
the generated base classes, which answer UNIMPLEMENTED.
"""

import functools

from absl import logging
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from captioning.inference import tensors
from captioning.inference.grpc_client import SIGNATURE_DEF_FIELD
from captioning.util.errors import CaptioningError
from serving.status import from_error, invalid_argument


def _rpc(method):
    """Turns errors into gRPC statuses (status.from_error); a bug is INTERNAL, logged here and named to no client."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception as error:  # a bug must fail one request, not the server
            failure = from_error(error)
            if not isinstance(error, CaptioningError):
                logging.exception("%s failed", method.__name__)
            context.abort(failure.code, failure.grpc_message)

    return wrapper


def requested_version(model_spec):
    """(name, version, label) from a ModelSpec; version/label None when unset."""
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _require_model_spec(request):
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry, predictor):
        self._registry = registry
        self._predictor = predictor

    @_rpc
    def Predict(self, request, context):
        _require_model_spec(request)
        servable = self._registry.get(*requested_version(request.model_spec))
        signature_name, outputs = self._predictor.predict(
            servable,
            request.model_spec.signature_name,
            request.inputs,
            request.output_filter,
            decode=tensors.from_proto,
            measure=tensors.proto_size,
        )
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for alias, array in outputs.items():
            response.outputs[alias].CopyFrom(tensors.to_proto(array))
        return response

    @_rpc
    def GetModelMetadata(self, request, context):
        _require_model_spec(request)
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        servable = self._registry.get(*requested_version(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(servable.signature_def_map())
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry):
        self._registry = registry

    @_rpc
    def GetModelStatus(self, request, context):
        _require_model_spec(request)
        statuses = self._registry.status(*requested_version(request.model_spec))
        return get_model_status_pb2.GetModelStatusResponse(model_version_status=statuses)
