"""What a client is told of an error, over REST and gRPC: an error of the tree gets its kind's status and its
message; anything else is a generic 500 / INTERNAL that names nothing of it (not even its class), logged on the
server."""

import grpc
import pytest
from fastapi.testclient import TestClient

from captioning.inference.runners import MissingSignatureError
from captioning.search.engine import ModelVersionError
from captioning.util import errors
from serving.grpc_services import _rpc
from serving.status import invalid_argument
from serving.web.app import create_app


class Raising:
    """A RestApi whose every call raises the given error."""

    def __init__(self, error):
        self.error = error

    def handle(self, method, path, body):
        raise self.error


class Aborted(Exception):
    pass


class Context:
    """A gRPC servicer context that records abort()."""

    def abort(self, code, message):
        self.code, self.message = code, message
        raise Aborted()


def over_grpc(error):
    @_rpc
    def method(self, request, context):
        raise error

    context = Context()
    with pytest.raises(Aborted):
        method(None, None, context)
    return context.code, context.message


def over_rest(error):
    client = TestClient(create_app(Raising(error)), base_url="http://127.0.0.1", raise_server_exceptions=False)
    response = client.post("/v1/models/captioner:predict", json={"instances": []})
    return response.status_code, response.json()["error"], response.headers


@pytest.mark.parametrize("kind", list(errors.OUTCOMES))
def test_each_kind_gets_its_status_and_message(kind):
    row = errors.OUTCOMES[kind]
    status, message, headers = over_rest(kind("what went wrong"))
    assert (status, message) == (row.http_status, "what went wrong")
    assert ("retry-after" in headers) == (kind is errors.Unavailable)
    assert over_grpc(kind("what went wrong")) == (grpc.StatusCode[row.grpc_code], "what went wrong")


def test_the_projects_errors_keep_their_statuses():
    assert over_rest(ModelVersionError("re-index first"))[:2] == (409, "re-index first")
    assert over_rest(MissingSignatureError("no embed_image"))[0] == 501
    assert over_rest(invalid_argument("bad rows"))[:2] == (400, "bad rows")  # TF Serving's own codes stand
    assert over_grpc(invalid_argument("bad rows")) == (grpc.StatusCode.INVALID_ARGUMENT, "bad rows")


@pytest.mark.parametrize("bug", [KeyError("secret_key"), ValueError("secret value"), ZeroDivisionError("secret")])
def test_an_unexpected_error_leaks_no_class_name_and_is_logged(bug, caplog):
    status, message, _ = over_rest(bug)
    assert status == 500 and message == errors.UNEXPECTED_MESSAGE
    assert type(bug).__name__ in caplog.text  # the server's log has it
    code, message = over_grpc(bug)
    assert code == grpc.StatusCode.INTERNAL and message == errors.UNEXPECTED_MESSAGE
