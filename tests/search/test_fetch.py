"""URL fetching: private addresses refused unless allowed, redirects limited, size capped, content decoded."""

import time

import pytest

from captioning.search.fetch import FetchError, FetchOptions, fetch_image
from tests.search.conftest import colour_png

ALLOW = FetchOptions(allow_private=True, timeout_seconds=5)


def test_fetches_an_image_from_an_allowed_private_host(file_server):
    png = colour_png("red")
    with file_server({"/red.png": (200, {"Content-Type": "image/png"}, png)}) as base:
        assert fetch_image(f"{base}/red.png", ALLOW) == png


def test_refuses_loopback_private_and_link_local_hosts_by_default(file_server):
    with file_server({"/red.png": (200, {}, colour_png("red"))}) as base:
        with pytest.raises(FetchError, match="private, loopback or link-local.*--allow_private_urls"):
            fetch_image(f"{base}/red.png")
    for url in ("http://10.1.2.3/a.png", "http://192.168.0.1/a.png", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/a.png", "http://0.0.0.0/a.png"):
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
    routes = {"/big.png": (200, {}, colour_png("red", size=(400, 400))), "/text": (200, {}, b"<html>hello</html>"),
              "/gone": (404, {}, b"")}
    with file_server(routes) as base:
        with pytest.raises(FetchError, match="larger than the limit of 100 bytes"):
            fetch_image(f"{base}/big.png", FetchOptions(allow_private=True, max_bytes=100))
        with pytest.raises(FetchError, match="not a readable image"):
            fetch_image(f"{base}/text", ALLOW)
        with pytest.raises(FetchError, match="HTTP 404"):
            fetch_image(f"{base}/gone", ALLOW)
    with pytest.raises(FetchError, match="only http and https"):
        fetch_image("file:///etc/passwd", ALLOW)


def test_a_slow_server_times_out(file_server):
    def slow():
        time.sleep(3)
        return colour_png("red")

    with file_server({"/slow.png": (200, {}, slow)}) as base:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out"):
            fetch_image(f"{base}/slow.png", FetchOptions(allow_private=True, timeout_seconds=0.5))
        assert time.monotonic() - started < 2.5
