"""The project's errors: one tree, and the one table that says what each kind of error becomes for a user.

Every error the code raises on purpose derives from one kind below (besides a builtin such as ValueError where
callers catch that). A command line turns a kind into an exit code and one `error:` line, the web app into an HTTP
status with `{"error": message}`, the gRPC services into a status code with the message. Anything outside the tree
is a bug: a traceback on the command line, a generic 500 / INTERNAL for a client and a log line on the server.

It also holds tf_error_line: one readable line from a TensorFlow error message. A graph error's message starts
with a generic header ("Graph execution error:"), then where the op was defined, and a failed check reads
"assertion failed: [its message] [more data]..."; the line that matters is buried.
"""

import dataclasses
import re


class CaptioningError(Exception):
    """An expected failure; its message names the problem (and the fix when there is one)."""


class InvalidInput(CaptioningError, ValueError):
    """The user's or the client's input is wrong: a flag, a file's contents, a request's fields."""


class NotFound(CaptioningError, LookupError):
    """Something the input names does not exist: a model folder, a file."""


class Conflict(CaptioningError):
    """The input is fine but the state is not: an index built by another model version."""


class Unavailable(CaptioningError):
    """A resource is busy or unreachable (an index another process holds, a server that does not answer): the same
    request may work later."""


class OverLimit(CaptioningError):
    """The request asks more than a configured limit allows (each limit has a flag)."""


class Unsupported(CaptioningError):
    """The model lacks what this needs (it was exported without a signature or head)."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    exit_code: int  # of a command line
    http_status: int
    grpc_code: str  # a grpc.StatusCode name (kept as text: this module imports no gRPC)


OUTCOMES = {
    InvalidInput: Outcome(2, 400, "INVALID_ARGUMENT"),
    NotFound: Outcome(2, 404, "NOT_FOUND"),
    Conflict: Outcome(2, 409, "FAILED_PRECONDITION"),
    Unavailable: Outcome(2, 503, "UNAVAILABLE"),
    OverLimit: Outcome(2, 413, "RESOURCE_EXHAUSTED"),
    Unsupported: Outcome(2, 501, "UNIMPLEMENTED"),
}
UNEXPECTED = Outcome(1, 500, "INTERNAL")  # a bug: the message stays in the server's log
UNEXPECTED_MESSAGE = "internal error (the server's log has the details)"


def outcome(error: BaseException) -> Outcome:
    """What `error` becomes for a user: its kind's row of OUTCOMES, or UNEXPECTED outside the tree."""
    for kind in type(error).__mro__:
        if kind in OUTCOMES:
            return OUTCOMES[kind]
    return UNEXPECTED


def client_message(error: BaseException) -> str:
    """The message a client may see: the error's own for the tree, nothing of a bug (not even its class name)."""
    return str(error) if isinstance(error, CaptioningError) else UNEXPECTED_MESSAGE


_ASSERTION = re.compile(r"assertion failed: \[([^\]]*)\](?: \[([^\]]*)\])?")
_NOISE = ("Graph execution error", "Detected at node", "File ", "[[{{node")


def tf_error_line(message: str, limit: int = 300) -> str:
    """A failed assertion's own message (with its next piece when it ends in ':'), else the first informative line."""
    assertion = _ASSERTION.search(message)
    if assertion:
        first, second = assertion.groups()
        return (f"{first} {second}" if second and first.endswith(":") else first)[:limit]
    lines = [line.strip() for line in message.splitlines() if line.strip() and not line.strip().startswith(_NOISE)]
    return (lines or [message.strip()])[0][:limit]
