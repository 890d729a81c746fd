"""Errors with TensorFlow Serving's status codes, shared by gRPC and REST."""

import re
from http import HTTPStatus

import grpc

from captioning.util.errors import CaptioningError, client_message, outcome

# TF Serving truncates long error messages the same way (grpc_status_util.cc).
_MESSAGE_LIMIT = 1024

# Same mapping as TF Serving's http_server.cc (ToHTTPStatusCode).
_HTTP_STATUS = {
    grpc.StatusCode.OK: HTTPStatus.OK,
    grpc.StatusCode.CANCELLED: 499,  # "client closed request"
    grpc.StatusCode.UNKNOWN: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
}
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# Eager TF wraps graph errors in text TF Serving's session-based runtime never
# shows; strip it so clients see the op's own message.
_GRAPH_ERROR_PREFIX = re.compile(r"^Graph execution error:\s*Detected at node .*?\n<stack traces unavailable>\n", re.S)
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")


class ServingError(CaptioningError):
    """A failed request: a gRPC status code plus TF Serving's message."""

    def __init__(self, code, message, http_status=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self._http_status = http_status  # None: TF Serving's for the code

    @property
    def grpc_message(self):
        if len(self.message) > _MESSAGE_LIMIT:
            return self.message[:_MESSAGE_LIMIT] + "...TRUNCATED"
        return self.message

    @property
    def http_status(self):
        return self._http_status or int(_HTTP_STATUS.get(self.code, HTTPStatus.INTERNAL_SERVER_ERROR))


def invalid_argument(message):
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message):
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def from_error(error: BaseException) -> ServingError:
    """What a client is told of `error`: a ServingError as it is, an error of the tree with its kind's code
    (captioning.util.errors.OUTCOMES), anything else INTERNAL with a message that names nothing of it."""
    if isinstance(error, ServingError):
        return error
    result = outcome(error)
    return ServingError(grpc.StatusCode[result.grpc_code], client_message(error), result.http_status)


def from_tf_error(error):
    """Converts a tf.errors.OpError raised by a model into a ServingError."""
    code = _CODE_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN)
    message = _OP_SUFFIX.sub("", _GRAPH_ERROR_PREFIX.sub("", error.message))
    return ServingError(code, message)
