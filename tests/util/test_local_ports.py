"""Loopback ports for child servers: a free port binds, the wait returns once the child listens and fails in one
clear error when the child dies or never listens."""

import socket
import subprocess
import sys

import pytest

from captioning.util import errors
from captioning.util.local_ports import ServerStartError, free_port, wait_for_port

LISTEN_THEN_SLEEP = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
time.sleep(0.3)  # the caller polls before the port opens
server.listen()
time.sleep(60)
"""


def child(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)])


def test_a_free_port_can_be_bound():
    with socket.socket() as server:
        server.bind(("127.0.0.1", free_port()))


def test_the_wait_returns_once_the_child_listens():
    port = free_port()
    process = child(LISTEN_THEN_SLEEP, port)
    try:
        wait_for_port(port, process, timeout_seconds=120)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        process.kill()
        process.wait()


def test_a_child_that_exits_first_is_named_with_its_exit_code():
    process = child("import sys; sys.exit(3)")
    with pytest.raises(ServerStartError, match=r"stopped before listening on port \d+ \(exit code 3\)"):
        wait_for_port(free_port(), process, timeout_seconds=120)


def test_a_child_that_never_listens_fails_at_the_deadline():
    process = child("import time; time.sleep(60)")
    try:
        with pytest.raises(ServerStartError, match="did not listen on port"):
            wait_for_port(free_port(), process, timeout_seconds=1)
    finally:
        process.kill()
        process.wait()
    assert issubclass(ServerStartError, errors.Unavailable)  # a command line tells it in one line
