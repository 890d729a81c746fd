"""URL fetching: private addresses refused unless allowed, redirects limited, size capped, content decoded."""

import contextlib
import queue
import socket
import threading

import pytest

from captioning.search.fetch import FetchError, FetchOptions, fetch_image, is_public, without_userinfo
from tests.helpers import dripping_server
from tests.search.conftest import colour_png

ALLOW = FetchOptions(allow_private=True, timeout_seconds=5)


def test_fetches_an_image_from_an_allowed_private_host(file_server):
    png = colour_png("red")
    with file_server({"/red.png": (200, {"Content-Type": "image/png"}, png)}) as base:
        assert fetch_image(f"{base}/red.png", ALLOW) == png


def test_refuses_loopback_private_and_link_local_hosts_by_default(file_server):
    with (
        file_server({"/red.png": (200, {}, colour_png("red"))}) as base,
        pytest.raises(FetchError, match="private, loopback or link-local.*--allow_private_urls"),
    ):
        fetch_image(f"{base}/red.png")
    for url in (
        "http://10.1.2.3/a.png",
        "http://192.168.0.1/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/a.png",
        "http://0.0.0.0/a.png",
    ):
        with pytest.raises(FetchError, match="refused"):
            fetch_image(url, FetchOptions(timeout_seconds=1))


def test_redirects_are_followed_checked_and_limited(file_server):
    png = colour_png("blue")
    routes = {"/img": (200, {}, png), "/r0": (302, {"Location": "/img"}, b"")}
    for n in range(1, 6):
        routes[f"/r{n}"] = (301, {"Location": f"/r{n - 1}"}, b"")
    with file_server(routes) as base:
        assert fetch_image(f"{base}/r2", ALLOW) == png  # three hops
        with pytest.raises(FetchError, match="more than 3 redirects"):
            fetch_image(f"{base}/r5", ALLOW)
        # A redirect from an allowed public-looking URL to loopback would be checked again: here, without the
        # flag, the very first hop is already refused.
        with pytest.raises(FetchError, match="refused"):
            fetch_image(f"{base}/r0")


def test_size_cap_status_and_content_are_checked(file_server):
    routes = {
        "/big.png": (200, {}, colour_png("red", size=(400, 400))),
        "/text": (200, {}, b"<html>hello</html>"),
        "/gone": (404, {}, b""),
    }
    with file_server(routes) as base:
        with pytest.raises(FetchError, match="larger than the limit of 100 bytes"):
            fetch_image(f"{base}/big.png", FetchOptions(allow_private=True, max_bytes=100))
        with pytest.raises(FetchError, match="not a readable image"):
            fetch_image(f"{base}/text", ALLOW)
        with pytest.raises(FetchError, match="HTTP 404"):
            fetch_image(f"{base}/gone", ALLOW)
    with pytest.raises(FetchError, match="only http and https"):
        fetch_image("file:///etc/passwd", ALLOW)


@contextlib.contextmanager
def silent_server(hung_up: threading.Event):
    """A loopback server (yields its base URL) that reads one request and never answers; it sets `hung_up` when
    the client goes away, and waits at most 30 s for that."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)

        def serve():
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(30)
                try:
                    while connection.recv(4096):  # the request, then nothing until the client closes
                        pass
                except ConnectionResetError:
                    pass
                except TimeoutError:
                    return
                hung_up.set()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        thread.join(timeout=30)


def test_a_silent_server_times_out_and_is_hung_up_on():
    hung_up = threading.Event()
    with silent_server(hung_up) as base:
        with pytest.raises(FetchError, match="timed out after 0.5 s"):
            fetch_image(f"{base}/slow.png", FetchOptions(allow_private=True, timeout_seconds=0.5))
        assert hung_up.wait(30)  # the client closed the connection: it is not left waiting for an answer


@pytest.mark.parametrize("header_first", [True, False], ids=["dripping body", "dripping headers"])
def test_one_deadline_holds_against_a_server_that_drips(header_first):
    # The server drips for 20 s, a byte every 0.2 s, so no single read waits long: only one deadline for the
    # whole fetch ends it, and the server records that the client hung up before the drip ended.
    outcomes = queue.Queue()
    with dripping_server(header_first, seconds=20, outcomes=outcomes) as base:
        with pytest.raises(FetchError, match="timed out after 1 s"):
            fetch_image(f"{base}/drip.png", FetchOptions(allow_private=True, timeout_seconds=1))
        assert outcomes.get(timeout=30) == "hung up"


def test_a_slow_name_lookup_counts_against_the_deadline(monkeypatch):
    # The look-up answers only when released, after the fetch has given up on it: the deadline, not the
    # look-up, ended the fetch.
    released = threading.Event()

    def stuck_lookup(*args, **kwargs):
        released.wait(30)
        raise socket.gaierror("released by the test")

    monkeypatch.setattr(socket, "getaddrinfo", stuck_lookup)
    try:
        with pytest.raises(FetchError, match="timed out after 0.5 s resolving 'slow.example'"):
            fetch_image("http://slow.example/a.png", FetchOptions(timeout_seconds=0.5))
        assert not released.is_set()
    finally:
        released.set()


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "::10.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "2002:c0a8:1::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "::1",
        "::",
    ],
)
def test_ipv6_forms_that_embed_a_private_ipv4_address_are_private(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_stay_public(address):
    assert is_public(address)


def test_credentials_in_a_url_are_never_shown(file_server):
    with file_server({"/text": (200, {}, b"not an image")}) as base:
        url = base.replace("http://", "http://user:secret@") + "/text"
        with pytest.raises(FetchError) as error:
            fetch_image(url, ALLOW)
    assert "secret" not in str(error.value) and f"{base}/text" in str(error.value)
    assert without_userinfo("https://user:pw@example.com:8443/a.png?x=1") == "https://example.com:8443/a.png?x=1"
    assert without_userinfo("https://example.com/a@b.png") == "https://example.com/a@b.png"
