"""TF Serving's REST API (http_rest_api_handler.cc) on the standard library.

`RestApi` maps (method, path, body) to (HTTP status, JSON text) and knows
nothing about sockets; `RestServer` is a ThreadingHTTPServer that feeds it.
"""
import json
import os
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import grpc
from absl import logging
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from serving import json_tensors
from serving.predictor import DEFAULT_SIGNATURE
from serving.servable import SIGNATURE_DEF_FIELD
from serving.status import ServingError, invalid_argument

OPENAPI_PATH = "/v1/openapi.json"
_OPENAPI_FILE = os.path.join(os.path.dirname(__file__), "openapi.json")

# TF Serving's path patterns (http_rest_api_util.cc); it only claims /v1/ paths.
_API_PATH = re.compile(r"/v1/.*", re.I)
_POST_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I)
_GET_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.I)
_INT64_MAX = 2**63 - 1


class RestApi:
    def __init__(self, registry, predictor):
        self._registry = registry
        self._predictor = predictor
        with open(_OPENAPI_FILE) as f:
            self._openapi = f.read()

    def handle(self, method, path, body):
        """Returns (HTTP status, JSON text) for one request."""
        if method == "GET" and path == OPENAPI_PATH:
            return HTTPStatus.OK, self._openapi
        if not _API_PATH.fullmatch(path):
            return HTTPStatus.NOT_FOUND, json.dumps({"error": f"Not found: {path}"})
        try:
            return HTTPStatus.OK, self._dispatch(method, path, body)
        except ServingError as error:
            return error.http_status, json.dumps({"error": error.message})

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
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                               f"{action} is not supported by this server")
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
        input_dtypes = {alias: spec.dtype.as_datatype_enum
                        for alias, spec in servable.signatures[key].inputs.items()}
        if not input_dtypes:
            raise invalid_argument(
                f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        request_format, inputs = json_tensors.request_inputs(doc, input_dtypes)
        _, outputs = self._predictor.predict(servable, signature_name, inputs)
        return json_tensors.response_json(outputs, request_format)

    def _status(self, name, version, label):
        response = get_model_status_pb2.GetModelStatusResponse(
            model_version_status=self._registry.status(name, version, label))
        return json.dumps(_to_dict(response), indent=1)

    def _metadata(self, name, version, label):
        servable = self._registry.get(name, version, label)
        model_spec = model_pb2.ModelSpec(name=servable.name)
        model_spec.version.value = servable.version
        return json.dumps({
            "model_spec": _to_dict(model_spec),
            "metadata": {SIGNATURE_DEF_FIELD: _to_dict(servable.signature_def_map())},
        }, indent=1)


def _version(text):
    if text is None:
        return None
    if int(text) > _INT64_MAX:
        raise invalid_argument(f"Failed to convert version: {text} to numeric.")
    return int(text)


def _to_dict(message):
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


class _InFlight:
    """Counts requests being handled, so shutdown can wait for them."""

    def __init__(self):
        self._count = 0
        self._changed = threading.Condition()

    def __enter__(self):
        with self._changed:
            self._count += 1

    def __exit__(self, *exc_info):
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout):
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like TF Serving

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def _answer(self, method):
        with self.server.in_flight:
            status, text = self._response(method)
            payload = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def _response(self, method):
        length = self._content_length()
        if length is None or length > self.server.max_body_bytes:
            # The body stays unread, so the connection cannot carry another request.
            self.close_connection = True
            if length is None:
                return HTTPStatus.BAD_REQUEST, json.dumps({"error": "Bad Content-Length"})
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, json.dumps(
                {"error": f"Request body of {length} bytes exceeds the limit of "
                          f"{self.server.max_body_bytes} bytes"})
        body = self.rfile.read(length)
        try:
            return self.server.api.handle(method, urlsplit(self.path).path, body)
        except Exception as error:  # a bug must fail one request, not the server
            logging.exception("REST %s %s failed", method, self.path)
            return HTTPStatus.INTERNAL_SERVER_ERROR, json.dumps({"error": str(error)})

    def _content_length(self):
        """The declared body size, or None when it is not a non-negative integer."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        return length if length >= 0 else None

    def log_message(self, format, *args):
        logging.debug("REST %s: " + format, self.address_string(), *args)


class RestServer(ThreadingHTTPServer):
    """Serves a RestApi on (host, port); port 0 picks a free port.

    Bodies over `max_body_bytes` get 413 without being read.
    """

    def __init__(self, host, port, api, max_body_bytes):
        super().__init__((host, port), _Handler)
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.in_flight = _InFlight()
        self._thread = threading.Thread(target=self.serve_forever, name="rest-server", daemon=True)

    @property
    def port(self):
        return self.server_address[1]

    def start(self):
        self._thread.start()

    def stop(self, grace):
        """Stops accepting requests and waits up to `grace` s for in-flight ones."""
        self.shutdown()
        self.in_flight.wait_idle(grace)
        self.server_close()
