"""Loopback ports for child servers: a free port binds, the wait returns once the child listens and fails in one
clear error when the child dies or never listens."""

import signal
import socket
import subprocess
import sys

import pytest

from captioning.util import errors
from captioning.util.local_ports import (
    ServerStartError,
    child_server,
    embedded_server_command,
    free_port,
    stop_process,
    wait_for_port,
)

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


def test_a_child_server_lives_for_the_block_and_is_stopped_after_it_even_on_an_error():
    port = free_port()
    command = [sys.executable, "-c", LISTEN_THEN_SLEEP, str(port)]
    with pytest.raises(RuntimeError, match="the caller failed"), child_server(command, port, 120) as process:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        raise RuntimeError("the caller failed")
    assert process.poll() is not None  # terminated, not left to sleep out its minute


def test_a_child_server_that_dies_first_raises_and_is_reaped():
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with pytest.raises(ServerStartError, match=r"exit code 3"), child_server(command, free_port(), 120):
        pytest.fail("the block must not run")


def test_the_embedded_server_command_names_the_model_ports_and_flags():
    command = embedded_server_command("models/export", 8123, "--index_dir=index")
    assert command[:3] == [sys.executable, "-m", "serving.server"]
    assert command[3:] == ["--model_base_path=models/export", command[4], "--rest_api_port=8123", "--index_dir=index"]
    assert command[4].startswith("--port=") and int(command[4].split("=")[1]) != 8123
    assert embedded_server_command("m", 0, grpc_port=8124)[4:6] == ["--port=8124", "--rest_api_port=0"]


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace():
    ignore_then_sleep = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(600)"
    )
    process = subprocess.Popen([sys.executable, "-c", ignore_then_sleep], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "1\n"  # the handler is in place
    stop_process(process, grace_seconds=1)
    assert process.returncode == -signal.SIGKILL
    process.stdout.close()
