"""Loopback ports for a server run as a child process (scripts and tests): pick a free one, wait until it listens,
run the repository's embedded server (`python -m serving.server`) for the length of a `with` block."""

import contextlib
import socket
import subprocess
import sys
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


def embedded_server_command(model_base_path: str, rest_port: int, *flags: str, grpc_port: int = None) -> list:
    """`python -m serving.server` for `model_base_path`, REST on `rest_port` (0: none), gRPC on `grpc_port` (a free
    port when not given), and `flags`."""
    return [
        sys.executable,
        "-m",
        "serving.server",
        f"--model_base_path={model_base_path}",
        f"--port={grpc_port or free_port()}",
        f"--rest_api_port={rest_port}",
        *flags,
    ]


def stop_process(process: subprocess.Popen, grace_seconds: float = 60) -> None:
    """SIGTERM, so a server drains and closes cleanly; SIGKILL if it is still running after `grace_seconds`."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def child_server(command: list, port: int, timeout_seconds: float, **popen):
    """Starts `command`, yields the process once `port` listens (ServerStartError if it does not), and stops it on
    leaving the block (stop_process). Its output is dropped unless `popen` says otherwise."""
    popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
    process = subprocess.Popen(command, **popen)
    try:
        wait_for_port(port, process, timeout_seconds)
        yield process
    finally:
        stop_process(process)
