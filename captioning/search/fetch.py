"""Fetching an image from a URL without letting the URL reach where it should not.

Only http and https; every address the host name resolves to must be public (no loopback, private, link-local,
multicast or reserved ranges, also when embedded in an IPv6 address: IPv4-mapped or -compatible, NAT64, 6to4,
Teredo) unless private addresses are allowed, and the connection goes to the address that was checked, so a
second DNS answer cannot swap in another. Redirects are followed by hand, each hop checked again, at most
`max_redirects`. One wall-clock deadline covers the whole fetch, from the first name look-up to the last byte:
look-ups run on worker threads that are waited for no longer than the time left, and a watchdog shuts the socket
when the time is up, so a server that drips one byte at a time cannot hold a fetch. The body has a size cap, the
bytes must decode as an image, and a URL's user:password is never kept: messages and sources name the URL
without it.
"""

import concurrent.futures
import dataclasses
import http.client
import ipaddress
import socket
import threading
import time
from urllib.parse import urljoin, urlsplit, urlunsplit

from captioning.search.images import ImageError, ImageLimits, image_size
from captioning.util.errors import InvalidInput

_REDIRECTS = (301, 302, 303, 307, 308)
_READ_BYTES = 16384  # small reads, so the deadline is checked often
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Name look-ups (getaddrinfo has no timeout of its own) run here; a stuck one holds a worker, not the caller.
_RESOLVERS = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")


class FetchError(InvalidInput):
    """A URL that cannot or may not be fetched as an image; the message names the URL and why."""


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    timeout_seconds: float = 10.0  # for the whole fetch: look-ups, connections, redirects, every byte
    max_bytes: int = 20 * 2**20
    max_redirects: int = 3
    allow_private: bool = False  # allow loopback/private/link-local hosts (tests, an intranet)
    image_limits: ImageLimits = ImageLimits()


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def without_userinfo(url: str) -> str:
    """The URL with any user:password@ removed: what may be stored, shown and logged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def embedded_ipv4(ip) -> list:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo); [] for others."""
    if ip.version == 4:
        return []
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    as_int = int(ip)
    if as_int >> 32 == 0 and as_int > 1:  # ::a.b.c.d, the deprecated IPv4-compatible form (not :: or ::1)
        found.append(ipaddress.IPv4Address(as_int))
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(as_int & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def is_public(address: str) -> bool:
    """Whether an address (and every IPv4 address it embeds) is a public unicast one."""
    ip = ipaddress.ip_address(address.split("%")[0])
    return all(candidate.is_global and not candidate.is_multicast for candidate in [ip, *embedded_ipv4(ip)])


def _time_left(url: str, deadline: float, options: FetchOptions) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(f"{url}: timed out after {options.timeout_seconds:g} s")
    return left


def _resolve(url: str, host: str, port: int, deadline: float, options: FetchOptions) -> list:
    future = _RESOLVERS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=_time_left(url, deadline, options))
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise FetchError(f"{url}: timed out after {options.timeout_seconds:g} s resolving {host!r}") from None
    except (socket.gaierror, UnicodeError) as error:
        raise FetchError(f"{url}: cannot resolve host {host!r} ({error})") from None
    return [info[4][0] for info in infos]


def _checked_address(url: str, host: str, port: int, deadline: float, options: FetchOptions) -> str:
    """The address to connect to: the host's first resolved address, after every one of them passed the check."""
    addresses = _resolve(url, host, port, deadline, options)
    if not options.allow_private:
        blocked = [address for address in addresses if not is_public(address)]
        if blocked:
            raise FetchError(
                f"{url}: host {host} is a private, loopback or link-local address ({blocked[0]}); "
                "refused (start with --allow_private_urls to allow it)"
            )
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
    address = _checked_address(url, parts.hostname, port, deadline, options)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = cls(parts.hostname, port, timeout=_time_left(url, deadline, options))
    # Connect to the address that was checked; TLS still verifies the certificate for the host name.
    connection._create_connection = lambda _address, *args, **kwargs: socket.create_connection(
        (address, port), *args, **kwargs
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return connection, path


class _Watchdog:
    """Shuts a connection's socket at the deadline, which ends any read or write blocked on it."""

    def __init__(self, connection, deadline: float):
        self.fired = False
        self._connection = connection
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def _fire(self):
        self.fired = True
        sock = self._connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


def _read_body(url: str, response, options: FetchOptions, deadline: float) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > options.max_bytes:
        raise FetchError(f"{url}: image of {declared} bytes is larger than the limit of {options.max_bytes} bytes")
    chunks, size = [], 0
    while True:
        _time_left(url, deadline, options)
        chunk = response.read1(_READ_BYTES)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > options.max_bytes:
            raise FetchError(f"{url}: image is larger than the limit of {options.max_bytes} bytes")
        chunks.append(chunk)


def _get(url: str, options: FetchOptions, deadline: float):
    """(Location header or None, body or None) of one GET, within the deadline."""
    connection, path = _connection(url, options, deadline)
    with _Watchdog(connection, deadline) as watchdog:
        try:
            connection.request("GET", path, headers={"Accept": "image/*", "User-Agent": "captioning-search/1"})
            response = connection.getresponse()
            if response.status in _REDIRECTS and response.getheader("Location"):
                return response.getheader("Location"), None
            if response.status != 200:
                raise FetchError(f"{url}: HTTP {response.status} {response.reason}")
            data = _read_body(url, response, options, deadline)
        except (OSError, http.client.HTTPException) as error:
            if watchdog.fired or isinstance(error, TimeoutError) or "timed out" in str(error):
                raise FetchError(f"{url}: timed out after {options.timeout_seconds:g} s") from None
            raise FetchError(f"{url}: {error.__class__.__name__}: {error}") from None
        finally:
            connection.close()
    if watchdog.fired:  # the socket was shut mid-body: what arrived is not the whole image
        raise FetchError(f"{url}: timed out after {options.timeout_seconds:g} s")
    return None, data


def fetch_image(url: str, options: FetchOptions = FetchOptions()) -> bytes:
    """The bytes of the image at `url`; FetchError (one line naming the URL, without credentials) otherwise.
    A user:password in the URL is dropped, never sent."""
    deadline = time.monotonic() + options.timeout_seconds
    current = without_userinfo(url)
    for _ in range(options.max_redirects + 1):
        location, data = _get(current, options, deadline)
        if location is not None:
            current = without_userinfo(urljoin(current, location))
            continue
        try:
            image_size(data, options.image_limits)
        except ImageError as error:
            raise FetchError(f"{current}: {error}") from None
        return data
    raise FetchError(f"{without_userinfo(url)}: more than {options.max_redirects} redirects")
