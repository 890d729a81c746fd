"""Fetching an image from a URL without letting the URL reach where it should not.

Only http and https; every address the host name resolves to must be public (no loopback, private, link-local,
multicast or reserved ranges) unless private addresses are allowed, and the connection goes to the address that
was checked, so a second DNS answer cannot swap in another. Redirects are followed by hand, each hop checked
again, at most `max_redirects`. The whole fetch has a deadline, the body a size cap, and the bytes must decode
as an image.
"""

import dataclasses
import http.client
import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

from captioning.search.images import ImageError, image_size

_REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(ValueError):
    """A URL that cannot or may not be fetched as an image; the message names the URL and why."""


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    timeout_seconds: float = 10.0  # for the whole fetch, redirects included
    max_bytes: int = 20 * 2**20
    max_redirects: int = 3
    allow_private: bool = False  # allow loopback/private/link-local hosts (tests, an intranet)


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _checked_address(url: str, host: str, port: int, options: FetchOptions) -> str:
    """The address to connect to: the host's first resolved address, after every one of them passed the check."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchError(f"{url}: cannot resolve host {host!r} ({error})") from None
    addresses = [info[4][0] for info in infos]
    if not options.allow_private:
        blocked = [address for address in addresses if not _public(address)]
        if blocked:
            raise FetchError(f"{url}: host {host} is a private, loopback or link-local address ({blocked[0]}); "
                             "refused (start with --allow_private_urls to allow it)")
    return addresses[0]


def _connection(url: str, options: FetchOptions, deadline: float):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"{url}: only http and https URLs can be fetched")
    if not parts.hostname:
        raise FetchError(f"{url}: the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError(f"{url}: bad port") from None
    address = _checked_address(url, parts.hostname, port, options)
    timeout = max(0.1, deadline - time.monotonic())
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = cls(parts.hostname, port, timeout=timeout)
    # Connect to the address that was checked; TLS still verifies the certificate for the host name.
    connection._create_connection = lambda _address, *args, **kwargs: socket.create_connection(
        (address, port), *args, **kwargs)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return connection, path


def _read_body(url: str, response, options: FetchOptions, deadline: float) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > options.max_bytes:
        raise FetchError(f"{url}: image of {declared} bytes is larger than the limit of {options.max_bytes} bytes")
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise FetchError(f"{url}: timed out after {options.timeout_seconds:g} s")
        chunk = response.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > options.max_bytes:
            raise FetchError(f"{url}: image is larger than the limit of {options.max_bytes} bytes")
        chunks.append(chunk)


def fetch_image(url: str, options: FetchOptions = FetchOptions()) -> bytes:
    """The bytes of the image at `url`; FetchError (one line naming the URL and the problem) otherwise."""
    deadline = time.monotonic() + options.timeout_seconds
    current = url
    for _ in range(options.max_redirects + 1):
        connection, path = _connection(current, options, deadline)
        try:
            connection.request("GET", path, headers={"Accept": "image/*", "User-Agent": "captioning-search/1"})
            response = connection.getresponse()
            if response.status in _REDIRECTS and response.getheader("Location"):
                current = urljoin(current, response.getheader("Location"))
                continue
            if response.status != 200:
                raise FetchError(f"{current}: HTTP {response.status} {response.reason}")
            data = _read_body(current, response, options, deadline)
        except (OSError, http.client.HTTPException) as error:
            if isinstance(error, TimeoutError) or "timed out" in str(error):
                raise FetchError(f"{current}: timed out after {options.timeout_seconds:g} s") from None
            raise FetchError(f"{current}: {error.__class__.__name__}: {error}") from None
        finally:
            connection.close()
        try:
            image_size(data)
        except ImageError as error:
            raise FetchError(f"{current}: {error}") from None
        return data
    raise FetchError(f"{url}: more than {options.max_redirects} redirects")
