"""What an HTTP connection may cost the REST port: deadlines for its headers and its idle time, and a cap on how
many are open at once.

uvicorn has an idle keep-alive deadline (timeout_keep_alive, armed only after a response) and limit_concurrency
(a 503 once a request's headers have arrived, while every connection still holds its file descriptor); neither
ends a connection that sends half its headers and waits. So the h11 protocol is subclassed: a connection has
`header_timeout_seconds` from its start (or from its previous response) to the end of a request's headers. At
`max_connections` a new connection closes the one that has waited longest for headers (an idle or half-sent one:
a client that holds slots open loses them to clients that use them); when every connection is busy with a
request, the new one gets a 503 and is closed before anything is read. The process never runs out of file
descriptors for its own files.
"""

import dataclasses
import resource

import h11
from absl import logging
from uvicorn.protocols.http.h11_impl import H11Protocol

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"retry-after: 5\r\ncontent-length: %d\r\n\r\n%s"
)
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
FILES_KEPT_FOR_THE_SERVER = 1024  # model files, the index, gRPC connections: never taken by REST connections


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000  # open REST connections (then the longest waiting for headers closes, or 503)
    header_timeout_seconds: float = 10.0  # from connecting (or the last response) to a request's last header
    idle_timeout_seconds: float = 5.0  # keep-alive: an idle connection is closed after this long

    def protocol(self):
        """The uvicorn `http` protocol class that enforces these limits."""
        return type("LimitedH11Protocol", (LimitedH11Protocol,), {"limits": self})


class LimitedH11Protocol(H11Protocol):
    limits = ConnectionLimits()

    def connection_made(self, transport):
        if len(self.connections) >= self.limits.max_connections and not self._close_longest_waiting():
            body = (
                b'{"error": "this server has %d open connections, its limit (--max_connections); try again '
                b'later"}' % self.limits.max_connections
            )
            transport.write(_REFUSED % (len(body), body))
            transport.close()
            self.transport = None  # connection_lost has nothing of this connection to clean up
            return
        super().connection_made(transport)
        self._header_deadline = None
        self._arm_header_deadline()

    def connection_lost(self, exc):
        if self.transport is None:
            return
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data):
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request's headers are in
            self._cancel_header_deadline()

    def on_response_complete(self):
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()

    def _arm_header_deadline(self):
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self.limits.header_timeout_seconds, self._headers_too_slow)

    def _cancel_header_deadline(self):
        if getattr(self, "_header_deadline", None) is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _close_longest_waiting(self):
        """Closes the open connection that has waited longest for a request's headers; False if none waits."""
        waiting = [
            connection
            for connection in self.connections
            if getattr(connection, "_header_deadline", None) is not None and not connection.transport.is_closing()
        ]
        if not waiting:
            return False
        longest = min(waiting, key=lambda connection: connection._header_deadline.when())
        longest._cancel_header_deadline()
        longest.transport.close()
        return True

    def _headers_too_slow(self):
        self._header_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a request came: say why it ends
            self.transport.write(_TIMED_OUT)
        self.transport.close()


def reserve_file_descriptors(max_connections: int) -> None:
    """Raises the process's open-file limit so `max_connections` sockets leave FILES_KEPT_FOR_THE_SERVER for the
    rest; OSError naming the flag when the hard limit is too low."""
    needed = max_connections + FILES_KEPT_FOR_THE_SERVER
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise OSError(
                f"--max_connections {max_connections} needs {needed} open files, over this process's "
                f"limit of {hard}: give a smaller --max_connections"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        logging.info("Open-file limit raised from %d to %d for --max_connections", soft, needed)
