"""TF Serving's REST API (http_rest_api_handler.cc), as a function of the request.

`RestApi` maps (method, path, body) to (HTTP status, JSON text) and knows
nothing about HTTP servers; serving/web routes the project's one HTTP stack
(FastAPI on uvicorn) to it.
"""

import json
import re
from http import HTTPStatus
from urllib.parse import unquote

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from captioning.inference.grpc_client import SIGNATURE_DEF_FIELD
from captioning.util.errors import CaptioningError
from serving import json_tensors
from serving.predictor import DEFAULT_SIGNATURE
from serving.status import ServingError, from_error, invalid_argument

# TF Serving's path patterns (http_rest_api_util.cc); it only claims /v1/ paths.
_API_PATH = re.compile(r"/v1/.*", re.I)
_POST_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I)
_GET_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.I)
_INT64_MAX = 2**63 - 1


class RestApi:
    def __init__(self, registry, predictor):
        self._registry = registry
        self._predictor = predictor

    def handle(self, method, path, body):
        """Returns (HTTP status, JSON text) for one request; `path` as sent (percent-encoded)."""
        if not _API_PATH.fullmatch(path):
            return HTTPStatus.NOT_FOUND, json.dumps({"error": f"Not found: {path}"})
        try:
            return HTTPStatus.OK, self._dispatch(method, path, body)
        except CaptioningError as error:  # anything else is a bug: the app's handler logs it and answers 500
            failure = from_error(error)
            return failure.http_status, json.dumps({"error": failure.message})

    def _dispatch(self, method, path, body):
        pattern = {"POST": _POST_PATH, "GET": _GET_PATH}.get(method)
        match = pattern.fullmatch(path) if pattern else None
        if not match:
            raise invalid_argument(f"Malformed request: {method} {path}")
        name, version, label, action = match.groups()
        name = unquote(name or "")
        version = _version(version)
        label = unquote(label) if label else None
        if method == "POST":
            if action == "predict":
                return self._predict(name, version, label, body)
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"{action} is not supported by this server")
        if not name:
            raise invalid_argument("Missing model name in request.")
        if action == "metadata":
            return self._metadata(name, version, label)
        return self._status(name, version, label)

    def _predict(self, name, version, label, body):
        doc = json_tensors.parse_body(body)
        signature_name = json_tensors.signature_name(doc)
        servable = self._registry.get(name, version, label)
        key = signature_name or DEFAULT_SIGNATURE
        if key not in servable.signatures:
            raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
        input_dtypes = {alias: spec.dtype.as_datatype_enum for alias, spec in servable.signatures[key].inputs.items()}
        if not input_dtypes:
            raise invalid_argument(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        request_format, inputs = json_tensors.request_inputs(doc, input_dtypes, self._predictor.limits.check_sizes)
        _, outputs = self._predictor.predict(servable, signature_name, inputs)
        return json_tensors.response_json(outputs, request_format)

    def _status(self, name, version, label):
        response = get_model_status_pb2.GetModelStatusResponse(
            model_version_status=self._registry.status(name, version, label)
        )
        return json.dumps(_to_dict(response), indent=1)

    def _metadata(self, name, version, label):
        servable = self._registry.get(name, version, label)
        model_spec = model_pb2.ModelSpec(name=servable.name)
        model_spec.version.value = servable.version
        return json.dumps(
            {
                "model_spec": _to_dict(model_spec),
                "metadata": {SIGNATURE_DEF_FIELD: _to_dict(servable.signature_def_map())},
            },
            indent=1,
        )


def _version(text):
    if text is None:
        return None
    if int(text) > _INT64_MAX:
        raise invalid_argument(f"Failed to convert version: {text} to numeric.")
    return int(text)


def _to_dict(message):
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
