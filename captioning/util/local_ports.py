"""Loopback ports for a server run as a child process (scripts and tests): pick a free one, wait until it listens."""

import socket
import subprocess
import time

from captioning.util.errors import Unavailable

LOOPBACK = "127.0.0.1"


class ServerStartError(Unavailable):
    """The child server exited, or did not listen, before its deadline."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (another process may still take it before the caller binds it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_seconds: float, host: str = LOOPBACK) -> None:
    """Returns once `port` accepts a connection; raises ServerStartError if `process` exits first or the deadline
    passes. A loaded machine can take minutes to import TensorFlow, so callers pass a generous deadline."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(
                f"the server stopped before listening on port {port} (exit code {process.returncode})"
            )
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise ServerStartError(f"the server did not listen on port {port} within {timeout_seconds:.0f} s")
